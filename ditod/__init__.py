"""detectron2 glue for LayoutLMv3 document-layout detection."""

from .compat import install_shims

install_shims()  # before anything below imports detectron2

from . import backbone as _backbone  # noqa: E402, F401  (registers the backbone)
from . import rcnn as _rcnn  # noqa: E402, F401  (registers the meta-architecture)
from .checkpoint import LayoutCheckpointer  # noqa: E402
from .config import add_layoutlmv3_config, merge_options  # noqa: E402
from .datasets import register_layout_datasets  # noqa: E402
from .evaluation import LayoutEvaluator  # noqa: E402
from .launch import launch  # noqa: E402
from .mapper import LayoutDatasetMapper  # noqa: E402
from .trainer import LayoutTrainer  # noqa: E402

__all__ = [
    "LayoutCheckpointer",
    "LayoutDatasetMapper",
    "LayoutEvaluator",
    "LayoutTrainer",
    "add_layoutlmv3_config",
    "launch",
    "merge_options",
    "register_layout_datasets",
]
