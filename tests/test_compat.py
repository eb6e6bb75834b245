"""The detectron2 shims of ditod.compat, one test per shim."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import ditod  # noqa: F401  (applies the shims)
from ditod.compat import CompiledOpUnavailable, apply_shims


def run_python(code: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, timeout=300
    )


def test_numpy_aliases_are_the_builtins_and_existing_names_untouched():
    assert np.int is int and np.float is float and np.str is str and np.object is object
    assert np.bool is np.bool_  # numpy 2 has its own np.bool: the shim must not replace it
    assert np.zeros(2, dtype=np.float).dtype == np.float64


def test_pil_linear_is_bilinear():
    assert Image.LINEAR == Image.BILINEAR
    img = Image.new("L", (4, 4), 7).resize((2, 2), Image.LINEAR)
    assert np.asarray(img).tolist() == [[7, 7], [7, 7]]


def test_compiled_ops_stub_answers_version_queries():
    from detectron2 import _C
    from detectron2.utils.collect_env import collect_env_info

    assert _C.has_cuda() is False
    assert "without compiled ops" in _C.get_compiler_version()
    assert "detectron2" in collect_env_info()


def test_compiled_op_fails_naming_the_op():
    from detectron2.layers import nms_rotated

    boxes = torch.tensor([[10.0, 10.0, 4.0, 4.0, 0.0], [10.0, 10.0, 4.0, 4.0, 0.0]])
    with pytest.raises(CompiledOpUnavailable, match=r"_C\.nms_rotated .*no compiled ops"):
        nms_rotated(boxes, torch.tensor([0.9, 0.8]), 0.5)


def test_compiled_module_op_fails_naming_the_op():
    from detectron2.layers import ROIAlignRotated

    pooler = ROIAlignRotated((2, 2), spatial_scale=1.0, sampling_ratio=0)
    rois = torch.tensor([[0.0, 4.0, 4.0, 4.0, 4.0, 0.0]])
    with pytest.raises(CompiledOpUnavailable, match=r"_C\.roi_align_rotated_forward .*no compiled"):
        pooler(torch.rand(1, 1, 8, 8), rois)


def test_stub_does_not_pretend_to_have_dunder_attributes():
    from detectron2 import _C

    assert not hasattr(_C, "__path__")
    assert not hasattr(_C, "__wrapped__")


def test_apply_shims_is_idempotent():
    from detectron2 import _C

    apply_shims()
    from detectron2 import _C as again

    assert again is _C and np.int is int


def test_real_compiled_module_wins_over_the_stub():
    code = (
        "import sys, types\n"
        "real = types.ModuleType('detectron2._C'); real.marker = 1\n"
        "sys.modules['detectron2._C'] = real\n"
        "import ditod\n"
        "from detectron2 import _C\n"
        "assert _C.marker == 1, _C\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_import_prints_no_warnings():
    result = run_python("import ditod, layoutlmv3, detectron2, detectron2.modeling", "-W", "error")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_other_future_warnings_still_show(tmp_path):
    """The shim filters torch.jit.script's warning only while importing its two modules: with
    the filters as ditod leaves them (none overridden here), another FutureWarning, and the same
    torch.jit.script warning from a user's own code, still reach the user."""
    script = tmp_path / "user_code.py"  # torch.jit.script reads the function's source file
    script.write_text(
        "import warnings, ditod, torch\n"
        "warnings.warn('something else', FutureWarning)\n"
        "def f(x: int) -> int:\n"
        "    return x\n"
        "torch.jit.script(f)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "FutureWarning: something else" in result.stderr
    assert "torch.jit.script" in result.stderr and "deprecated" in result.stderr
