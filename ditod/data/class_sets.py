"""Class sets, checked by name before any work: the datasets' categories, the config's
``MODEL.ROI_HEADS.NUM_CLASSES`` and the ``class_names`` a checkpoint carries.

A checkpoint whose classes are named differently from the dataset's is refused unless
``MODEL.CLASS_MAPPING`` maps them: ``[[checkpoint class, dataset class], ...]``. Classes not
named there must match by name. The classifier rows of mapped classes are moved to the dataset's
order; a dataset class with no source starts from a fresh row (training only: evaluation and
inference refuse it, since its scores would be random).
"""

from detectron2.data import DatasetCatalog, MetadataCatalog

from .datasets import layout_categories, read_categories

__all__ = [
    "CDLA_AS_PUBLAYNET",
    "CDLA_CLASSES",
    "PUBLAYNET_CLASSES",
    "ClassSetMismatch",
    "check_class_sets",
    "dataset_class_names",
    "map_checkpoint_classes",
    "remap_class_rows",
]

# The released datasets' classes, in their category-id order.
CDLA_CLASSES = (
    "Text",
    "Title",
    "Figure",
    "Figure caption",
    "Table",
    "Table caption",
    "Header",
    "Footer",
    "Reference",
    "Equation",
)
PUBLAYNET_CLASSES = ("text", "title", "list", "table", "figure")
# What a CDLA-class detection counts as on PubLayNet ground truth (PubLayNet marks captions,
# equations and references as text or list, and no page headers or footers).
CDLA_AS_PUBLAYNET = {
    "Text": ("text", "list"),
    "Title": ("title",),
    "Figure": ("figure",),
    "Figure caption": ("text",),
    "Table": ("table",),
    "Table caption": ("text",),
    "Header": (),
    "Footer": (),
    "Reference": ("text", "list"),
    "Equation": ("text",),
}


class ClassSetMismatch(ValueError):
    """Two class sets that should be one (config, datasets, checkpoint) differ."""


def dataset_class_names(name: str) -> list[str]:
    """The layout classes of a registered dataset, in contiguous-id order, from its metadata,
    else read from its COCO json's categories (without parsing its images and annotations) and
    kept there (``thing_classes``, as the loader sets it)."""
    metadata = MetadataCatalog.get(name)
    if metadata.get("thing_classes", None) is not None:
        return list(metadata.thing_classes)
    if metadata.get("json_file", None):
        categories = layout_categories(read_categories(metadata.json_file))
        metadata.set(thing_classes=[c["name"] for c in categories])
        return list(metadata.thing_classes)
    DatasetCatalog.get(name)  # a dataset registered by other code fills its metadata on load
    return list(MetadataCatalog.get(name).get("thing_classes", []))


def check_class_sets(cfg, dataset_names) -> list[str]:
    """The class names shared by ``dataset_names``; raises :class:`ClassSetMismatch` when two of
    them differ or their number is not ``MODEL.ROI_HEADS.NUM_CLASSES``."""
    first, names = None, None
    for dataset in dataset_names:
        classes = dataset_class_names(dataset)
        if names is None:
            first, names = dataset, classes
        elif classes != names:
            raise ClassSetMismatch(
                f"datasets {first} and {dataset} have different classes: {names} vs {classes}; "
                "one model trains and evaluates on one class set"
            )
    expected = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    if names is not None and len(names) != expected:
        raise ClassSetMismatch(
            f"dataset {first} has {len(names)} classes {names}, but MODEL.ROI_HEADS.NUM_CLASSES "
            f"is {expected}: set MODEL.ROI_HEADS.NUM_CLASSES {len(names)}"
        )
    return names or []


def map_checkpoint_classes(
    checkpoint_classes, model_classes, mapping=(), source="checkpoint", allow_new: bool = True
) -> list[int | None]:
    """For each model (dataset) class, the index of the checkpoint class whose weights it takes,
    or None for a class the checkpoint does not have.

    Args:
        mapping: ``[checkpoint class, dataset class]`` pairs (``MODEL.CLASS_MAPPING``); classes
            not named there are matched by name.
        allow_new: False (evaluation, inference): a model class without a source raises.

    Raises:
        ClassSetMismatch: the names differ and no mapping was given, a mapping names a class that
            does not exist, or (``allow_new`` False) a class has no weights.
    """
    checkpoint_classes, model_classes = list(checkpoint_classes), list(model_classes)
    if not mapping:
        if checkpoint_classes == model_classes:
            return list(range(len(model_classes)))
        only_checkpoint = [c for c in checkpoint_classes if c not in model_classes]
        only_model = [c for c in model_classes if c not in checkpoint_classes]
        detail = (
            f"only in the checkpoint: {only_checkpoint}; only in the dataset: {only_model}"
            if only_checkpoint or only_model
            else "same names, different order"
        )
        raise ClassSetMismatch(
            f"{source} was trained on classes {checkpoint_classes}, the dataset has "
            f"{model_classes} ({detail}). If that is meant, map them with MODEL.CLASS_MAPPING "
            "[[checkpoint class, dataset class], ...] (classes not listed match by name)"
        )
    sources = {}
    for pair in mapping:
        if len(pair) != 2:
            raise ClassSetMismatch(
                f"MODEL.CLASS_MAPPING entry {list(pair)} is not a [checkpoint class, dataset "
                "class] pair"
            )
        old, new = pair
        if old not in checkpoint_classes:
            raise ClassSetMismatch(
                f"MODEL.CLASS_MAPPING: '{old}' is not a class of {source} {checkpoint_classes}"
            )
        if new not in model_classes:
            raise ClassSetMismatch(
                f"MODEL.CLASS_MAPPING: '{new}' is not a class of the dataset {model_classes}"
            )
        sources[new] = checkpoint_classes.index(old)
    result = [
        sources.get(name, checkpoint_classes.index(name) if name in checkpoint_classes else None)
        for name in model_classes
    ]
    unmapped = [name for name, index in zip(model_classes, result) if index is None]
    if unmapped and not allow_new:
        raise ClassSetMismatch(
            f"{source} has no weights for the dataset's classes {unmapped} (its classes: "
            f"{checkpoint_classes}); evaluation and inference never score a class with a random "
            "classifier. Map them with MODEL.CLASS_MAPPING, or evaluate on the classes it has"
        )
    return result


def _rows_per_class(key: str, value, num_classes: int) -> int | None:
    """Rows per class of a class-dependent predictor tensor, None if it does not depend on the
    class (class-agnostic box regression or masks, and every other tensor)."""
    if value.dim() == 0:
        return None
    rows = value.shape[0]
    if key.endswith(("cls_score.weight", "cls_score.bias")):
        return 1
    if key.endswith(("bbox_pred.weight", "bbox_pred.bias")) and rows == 4 * num_classes:
        return 4
    if ".mask_head.predictor." in key and rows == num_classes:
        return 1
    return None


def remap_class_rows(state: dict, model_state: dict, sources: list, num_checkpoint_classes: int):
    """The predictor tensors of ``state`` (a detector checkpoint) re-ordered for the model's
    classes: row block ``i`` of the model takes checkpoint block ``sources[i]``; a None keeps the
    model's initial rows. The classifier's last (background) row is kept. Returns the new state
    and the keys holding rows not from the checkpoint."""
    state, fresh = dict(state), []
    for key, value in state.items():
        per_class = _rows_per_class(key, value, num_checkpoint_classes)
        if per_class is None or key not in model_state:
            continue
        target = model_state[key].detach().clone()
        for index, source in enumerate(sources):
            if source is not None:
                target[index * per_class : (index + 1) * per_class] = value[
                    source * per_class : (source + 1) * per_class
                ]
        if key.endswith(("cls_score.weight", "cls_score.bias")):
            target[-1] = value[-1]  # background
        if None in sources:
            fresh.append(key)
        state[key] = target
    return state, fresh
