"""tools/demo.py: which real pages it evaluates on, when it may reuse the pages an earlier run
rendered, and the whole demo at its smallest, in English and in Chinese."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, import_script

from ditod.data import synthetic
from ditod.data.class_sets import CDLA_CLASSES, PUBLAYNET_CLASSES
from ditod.fonts import cjk_fonts
from ditod.modeling.precision import PrecisionChoice

demo = import_script("tools/demo.py")


def test_real_pages_come_from_a_folder_with_a_coco_json(tmp_path, capsys):
    assert demo.real_pages("") is None  # asked for none
    assert demo.real_pages(str(tmp_path / "missing")) is None
    assert "is not a folder with a COCO JSON; skipped" in capsys.readouterr().out
    coco = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.jpg"}]}
    (tmp_path / "pages.json").write_text(json.dumps(coco))
    annotations, images = demo.real_pages(str(tmp_path))
    assert annotations == tmp_path / "pages.json"
    assert images == [tmp_path / "a.png", tmp_path / "b.jpg"]


def test_pages_are_reused_only_with_the_same_settings(tmp_path):
    assert demo.rendered_with(tmp_path) is None
    settings = {"pages": 160, "held_out": 8, "seed": 0, "style": "document"}
    (tmp_path / "pages.json").write_text(json.dumps(settings))
    assert demo.rendered_with(tmp_path) == settings
    (tmp_path / "pages.json").write_text("{not json")
    assert demo.rendered_with(tmp_path) is None  # an unreadable record means: render again


def test_pages_of_another_generator_version_are_not_reused(tmp_path, monkeypatch):
    """The page cache's settings carry a digest of the generator's code: the same code gives
    the same digest, a change to any of its modules another."""
    source = ROOT / "ditod" / "data"
    for name in synthetic.RENDERING_MODULES:
        (tmp_path / name).write_bytes((source / name).read_bytes())
    current = synthetic.generator_fingerprint()
    monkeypatch.setattr(synthetic, "__file__", str(tmp_path / "synthetic.py"))
    assert synthetic.generator_fingerprint() == current
    with (tmp_path / "document_pages.py").open("a") as module:
        module.write("# tables drawn another way\n")
    assert synthetic.generator_fingerprint() != current


@pytest.mark.parametrize(
    ("chosen", "opts", "amp"),
    [("bf16", [], "bfloat16"), ("fp32", [], ""), ("bf16", ["SOLVER.AMP.ENABLED", "False"], None)],
    ids=["bf16-units", "no-bf16-units", "user-set"],
)
def test_the_demo_trains_in_bf16_where_inference_would_run_it(monkeypatch, chosen, opts, amp):
    probed = []
    monkeypatch.setattr(
        demo,
        "choose_precision",
        lambda setting, device: probed.append((setting, device)) or PrecisionChoice(chosen, "why"),
    )
    assert demo.training_amp(["MODEL.WEIGHTS", "x", *opts]) == (
        amp,
        "SOLVER.AMP as given" if amp is None else "why",
    )
    assert probed == ([] if amp is None else [("auto", "cpu")])
    assert demo.training_amp([], "zh")[0] == ""  # bf16 did not hold on the Chinese demo


def test_publaynet_classes_are_for_english_pages(capsys):
    with pytest.raises(SystemExit):
        demo.main(["--language", "zh", "--classes", "publaynet", "--output-dir", "unused"])
    assert "--classes publaynet is for English pages" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("language", "classes"),
    [("en", "cdla"), ("en", "publaynet"), ("zh", "cdla")],
    ids=["en", "en-publaynet", "zh"],
)
def test_the_demo_runs_end_to_end_in_each_language(tmp_path, language, classes):
    """``make demo`` / ``make demo-zh`` at the smallest size: every step runs, the counts and the
    machine land in heldout_match.json, Markdown is written for each held-out page; with
    ``--classes publaynet`` the pages and the model have PubLayNet's classes."""
    if language == "zh" and not cjk_fonts():
        pytest.skip("no CJK font installed (scripts/install.sh installs one)")
    out = tmp_path / "demo"
    command = [
        *(sys.executable, str(ROOT / "tools" / "demo.py"), "--language", language),
        *("--output-dir", out, "--pages", 6, "--held-out", 1, "--iterations", 10),
        *("--real-pages", "", "--classes", classes),
    ]
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=900, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    match = json.loads((out / "heldout_match.json").read_text())
    assert match["gt"] > 5 and match["machine"]["cores"] >= 1
    assert match["training_precision"] in ("bfloat16", "fp32")
    assert f"== training precision: {match['training_precision']} (" in result.stdout
    assert match["benchmark"].startswith("make demo-zh" if language == "zh" else "make demo:")
    assert len(list((out / "inference" / "markdown").glob("*.md"))) == 1
    names = [
        c["name"] for c in json.loads((out / "held_out" / "val.json").read_text())["categories"]
    ]
    assert names == list(PUBLAYNET_CLASSES if classes == "publaynet" else CDLA_CLASSES)
    if classes == "publaynet":
        checkpoint = torch.load(out / "train" / "model_final.pth", weights_only=False)
        assert checkpoint["class_names"] == list(PUBLAYNET_CLASSES)
    if language == "zh":  # the CDLA user's files: labelme pages, their COCO, their OCR
        cdla = out / "data" / "CDLA"
        assert list((cdla / "train").glob("*.json")) and (cdla / "train.json").is_file()
        assert len(list((cdla / "OCR").glob("*.json"))) == 6
        assert (out / "tokenizer" / "sentencepiece.bpe.model").is_file()
