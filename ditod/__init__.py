"""detectron2 glue for LayoutLMv3 document-layout detection."""

from .compat import apply_shims

apply_shims()  # before anything below imports detectron2
