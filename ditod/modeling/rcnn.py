"""Generalized R-CNN whose backbone also sees each page's OCR text tokens."""

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.modeling.poolers import ROIPooler
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

from .backbone import PageBatch
from .layout_postprocess import LayoutPostprocess
from .roi_align import use_matmul_roi_align
from .roi_heads import TEXT_MAP

__all__ = ["VLGeneralizedRCNN"]


@META_ARCH_REGISTRY.register()
class VLGeneralizedRCNN(GeneralizedRCNN):
    """``GeneralizedRCNN`` that pads the batch's text and passes it with the images to the
    backbone. Inputs may carry ``input_ids`` (L,) and ``bbox`` (L, 4) in 0..1000 of the augmented,
    unpadded page (from :class:`ditod.data.mapper.LayoutDatasetMapper`); pages without them, and
    every
    page when the model is image-only, get no text.

    Args:
        pad_token_id: id used to pad ``input_ids`` (RoBERTa and XLM-R: 1).
        use_text: pass text to the backbone.
        layout_postprocess: applied to each page's detections at inference (``TEST.LAYOUT``).

    ``autocast_dtype`` (None: off) runs :meth:`inference` under autocast; set by
    :func:`ditod.modeling.precision.apply_inference_precision`.

    The ROI heads' RoIAlign is :class:`~ditod.modeling.roi_align.MatmulROIAlign`: the same
    forward, a faster CPU backward in bf16 training.
    """

    @configurable
    def __init__(
        self,
        *,
        pad_token_id: int = 1,
        use_text: bool = True,
        layout_postprocess: LayoutPostprocess | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for module in self.roi_heads.modules():
            if isinstance(module, ROIPooler):
                use_matmul_roi_align(module)
        self.pad_token_id = pad_token_id
        self.use_text = use_text
        self.layout_postprocess = layout_postprocess
        self.autocast_dtype = None  # inference under autocast (see ditod.modeling.precision)

    @classmethod
    def from_config(cls, cfg):
        heads = cfg.MODEL.ROI_HEADS.NAME
        for key, on in (
            ("MODEL.LAYOUTLMV3.FUSION.BOX_HEAD", cfg.MODEL.LAYOUTLMV3.FUSION.BOX_HEAD),
            ("MODEL.RELATION.LAYERS", cfg.MODEL.RELATION.LAYERS > 0),
        ):
            if on and heads != "LayoutCascadeROIHeads":
                raise ValueError(
                    f"{key} needs MODEL.ROI_HEADS.NAME LayoutCascadeROIHeads, not {heads}"
                )
        config = super().from_config(cfg)
        config["use_text"] = not cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY
        postprocess = LayoutPostprocess.from_config(cfg)
        config["layout_postprocess"] = postprocess if postprocess.active else None
        return config

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A host tensor on the model's device: pinned and copied without blocking on CUDA (a
        pageable copy waits for the GPU)."""
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def page_batch(self, images, batched_inputs) -> PageBatch:
        """Images (an ``ImageList``) + text padded to the batch's longest page, with the pages'
        sizes as a (B, 2) tensor for the fusion, built on the host and copied once."""
        batch = PageBatch(images.tensor, list(images.image_sizes))
        lengths = [len(x.get("input_ids", ())) for x in batched_inputs]
        if not self.use_text or max(lengths) == 0:
            return batch
        if torch.jit.is_tracing():  # one page, its sizes and token count as graph values
            (inputs,) = batched_inputs
            batch.image_sizes = torch.stack(images.image_sizes)
            batch.input_ids = inputs["input_ids"][None].to(self.device)
            batch.bbox = inputs["bbox"][None].to(self.device)
            batch.attention_mask = torch.ones_like(batch.input_ids)
            return batch
        batch.image_sizes = self._to_device(torch.tensor(images.image_sizes, dtype=torch.long))
        size = (len(batched_inputs), max(lengths))
        input_ids = torch.full(size, self.pad_token_id, dtype=torch.long)
        bbox = torch.zeros(*size, 4, dtype=torch.long)
        attention_mask = torch.zeros(size, dtype=torch.long)
        for i, (inputs, length) in enumerate(zip(batched_inputs, lengths)):
            if length:
                input_ids[i, :length] = inputs["input_ids"]
                bbox[i, :length] = inputs["bbox"]
                attention_mask[i, :length] = 1
        batch.input_ids = self._to_device(input_ids)
        batch.bbox = self._to_device(bbox)
        batch.attention_mask = self._to_device(attention_mask)
        return batch

    def features(self, images, batched_inputs) -> dict[str, torch.Tensor]:
        """The backbone's features of a batch, with the text map the box heads pool
        (``FUSION.BOX_HEAD``; zeros for a batch without text) under ``TEXT_MAP``."""
        batch = self.page_batch(images, batched_inputs)
        features = self.backbone(batch)
        shape = self.backbone.bottom_up.box_head_text_shape
        if shape is not None:
            if batch.text_map is None:
                height, width = (size // shape.stride for size in images.tensor.shape[-2:])
                batch.text_map = images.tensor.new_zeros(len(images), shape.channels, height, width)
            features[TEXT_MAP] = batch.text_map
        return features

    def forward(self, batched_inputs):
        """Training: a dict of losses; inference: see :meth:`inference`."""
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.features(images, batched_inputs)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        if self.vis_period > 0:
            storage = get_event_storage()
            if storage.iter % self.vis_period == 0:
                self.visualize_training(batched_inputs, proposals)
        return {**proposal_losses, **detector_losses}

    def inference(self, batched_inputs, detected_instances=None, do_postprocess=True):
        """Per page ``{"instances": Instances}`` in input pixels (raw outputs when
        ``do_postprocess`` is False)."""
        assert not self.training
        images = self.preprocess_image(batched_inputs)
        dtype = self.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
            features = self.features(images, batched_inputs)
            if detected_instances is None:
                proposals, _ = self.proposal_generator(images, features, None)
                results, _ = self.roi_heads(images, features, proposals, None)
            else:
                detected_instances = [x.to(self.device) for x in detected_instances]
                results = self.roi_heads.forward_with_given_boxes(features, detected_instances)
        if dtype is not None:
            results = [_float32_fields(result) for result in results]
        if self.layout_postprocess is not None:
            results = [self.layout_postprocess(page) for page in results]
        if do_postprocess:
            return GeneralizedRCNN._postprocess(results, batched_inputs, images.image_sizes)
        return results


def _float32_fields(instances: Instances) -> Instances:
    """``instances`` with every floating-point field (scores, boxes) in float32, whatever
    autocast computed it in."""
    for name, value in instances.get_fields().items():
        if isinstance(value, Boxes):
            instances.set(name, Boxes(value.tensor.float()))
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            instances.set(name, value.float())
    return instances
