"""Pictures for synthetic documents: matplotlib plots of several kinds (lines, bars, scatter,
histograms, heat maps, grids of panels), photo-like pictures (textures, fluorescence and stained
micrographs), schematic diagrams (labelled boxes and circles joined by arrows), composite
figures as papers print them (panels of mixed kinds in uneven rows, white gaps between them, a
letter at each panel's top left), and display equations (matplotlib mathtext), each rendered to
a ``PIL.Image`` of the size asked for, with the text an OCR engine reads in it: a plot's tick
labels, axis labels, legend entries and panel titles, a diagram's labels and a composite's panel
letters at their ink boxes, an equation as one line of plain text. Uses matplotlib's object API
(no pyplot state), so pages can render in worker processes."""

import io
import itertools
import random
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

__all__ = ["FIGURE_KINDS", "PictureText", "equation_image", "figure_image"]

# (mathtext, the line an OCR engine reads from it: operators unspaced, as the default engine
# reads display equations, e.g. "E=mc²+")
EQUATIONS = (
    (r"$E = m c^{2} + \sum_{i=1}^{%d} x_i^{2}$", "E=mc²+Σxᵢ²"),
    (
        r"$f(x) = \frac{1}{\sqrt{2\pi\sigma^{2}}}\,e^{-\frac{(x-\mu)^{2}}{2\sigma^{2}}}$",
        "f(x)=1/√(2πσ²)e^(−(x−μ)²/2σ²)",
    ),
    (
        r"$\mathcal{L} = -\sum_{c=1}^{%d} y_c \log p_c + \lambda \|w\|^{2}$",
        "L=−Σyc log pc+λ‖w‖²",
    ),
    (
        r"$\hat{y}_t = \alpha\, y_{t-1} + (1-\alpha)\, \hat{y}_{t-%d}$",
        "ŷt=αyt−1+(1−α)ŷt−%d",
    ),
    (r"$\int_{0}^{\infty} e^{-%d x}\, dx = \frac{1}{%d}$", "∫e^−%dx dx=1/%d"),
    (
        r"$R^{2} = 1 - \frac{\sum_i (y_i - \hat{y}_i)^{2}}{\sum_i (y_i - \bar{y})^{2}}$",
        "R²=1−Σ(yi−ŷi)²/Σ(yi−ȳ)²",
    ),
    (r"$\mathbf{x}^{T} A\, \mathbf{x} \geq %d \, \|\mathbf{x}\|^{2}$", "xᵀAx≥%d‖x‖²"),
    (r"$\nabla \cdot \mathbf{E} = \frac{\rho}{\epsilon_{0}}, \quad k = %d$", "∇·E=ρ/ε0, k=%d"),
)


INK = 160  # a grey value darker than this is ink
DIAGRAM_LABELS = (
    "Input", "Encoder", "Decoder", "Output", "Sample", "Filter", "Model", "Cells", "Control",
    "Treatment", "Data", "Layer", "Signal", "Detector", "Source", "Gene", "Protein", "Patients",
    "Screening", "Excluded", "Follow-up", "Analysis", "Training", "Test", "Baseline", "Step 1",
    "Step 2", "Step 3", "Feature map", "Classifier", "Pooling", "Receptor", "Ligand", "Nucleus",
)  # fmt: skip
PANEL_LETTERS = ("ABCDEF", "abcdef", ("(a)", "(b)", "(c)", "(d)", "(e)", "(f)"))


@dataclass
class PictureText:
    """What an OCR engine reads in a picture: ``boxes`` ``[x, y, w, h]`` (pixels of the
    picture) and the ``words`` of each line there."""

    boxes: list = field(default_factory=list)
    words: list = field(default_factory=list)


def _axes_plot(axes, rng: random.Random, kind: str) -> None:
    generator = np.random.default_rng(rng.randrange(2**32))
    x = np.linspace(0, rng.uniform(5, 50), 60)
    if kind == "line":
        for k in range(rng.randint(1, 4)):
            y = np.cumsum(generator.normal(0.2 * k, 1, x.size))
            axes.plot(x, y, marker=rng.choice(["", "o", "s", "^"]), markersize=3, label=f"S{k + 1}")
        axes.legend(fontsize=6, frameon=False)
    elif kind == "bar":
        groups = rng.randint(3, 8)
        values = generator.uniform(1, 10, groups)
        axes.bar(range(groups), values, yerr=generator.uniform(0.1, 1, groups), capsize=2)
        axes.set_xticks(range(groups), [f"G{k + 1}" for k in range(groups)])
    elif kind == "scatter":
        points = generator.normal(size=(rng.randint(30, 200), 2))
        axes.scatter(points[:, 0], points[:, 1] * rng.uniform(0.5, 2), s=6, alpha=0.7)
    elif kind == "histogram":
        axes.hist(generator.normal(size=500), bins=rng.randint(10, 30), color="grey")
    else:  # heat map
        axes.imshow(generator.random((rng.randint(6, 20), rng.randint(6, 20))), cmap="viridis")
    axes.set_xlabel(rng.choice(["Time (s)", "Epoch", "Dose (mg)", "Length", "x"]), fontsize=7)
    axes.set_ylabel(rng.choice(["Value", "Accuracy (%)", "Count", "Density", "y"]), fontsize=7)
    axes.tick_params(labelsize=6)


def _smooth_noise(generator, width: int, height: int, cell: int, channels: int) -> np.ndarray:
    """Random values in [0, 1] on a grid of ``cell`` pixels, interpolated to ``height`` ×
    ``width`` × ``channels``."""
    coarse = generator.random((max(2, height // cell), max(2, width // cell), channels))
    image = Image.fromarray((coarse * 255).astype(np.uint8).squeeze(-1 if channels == 1 else None))
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), np.float32) / 255


def _photo(width: int, height: int, rng: random.Random) -> Image.Image:
    """A photo-like picture: a smooth texture in colour or grey (a photograph of a scene), a
    fluorescence micrograph (bright blobs in one or two colours on black) or a stained section
    (dark nuclei on pink)."""
    generator = np.random.default_rng(rng.randrange(2**32))
    kind = rng.choice(["texture", "fluorescence", "stained"])
    if kind == "texture":
        pixels = _smooth_noise(generator, width, height, 24, 3)
        image = Image.fromarray((pixels * 255).astype(np.uint8))
        return image.convert("L").convert("RGB") if rng.random() < 0.4 else image
    spots = _smooth_noise(generator, width, height, rng.choice([5, 7, 10]), 1)
    if kind == "fluorescence":
        bright = np.clip((spots - 0.55) * 3.5, 0, 1) ** 1.5
        colour = np.array(rng.choice([(0, 1, 0), (0.2, 0.4, 1), (1, 0.1, 0.1), (1, 0, 1)]))
        pixels = bright[..., None] * colour
    else:
        nuclei = np.clip((spots - 0.6) * 4, 0, 1)[..., None]
        pink, purple = np.array([0.95, 0.75, 0.85]), np.array([0.35, 0.2, 0.5])
        pixels = pink * (1 - nuclei) + purple * nuclei
        pixels *= 0.9 + 0.1 * _smooth_noise(generator, width, height, 40, 1)[..., None]
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def _diagram(axes, rng: random.Random, width: int, height: int) -> None:
    """A schematic in ``axes`` of ``width`` × ``height`` pixels: 2–7 labels in boxes or circles
    along a row, a column or a zigzag (as many as fit), each joined to the next by an arrow."""
    axes.set_xlim(0, 10)
    axes.set_ylim(0, 10)
    axes.set_axis_off()
    path = rng.choice(["row", "column", "zigzag"] if height >= 90 else ["row"])
    room = {"row": width // 75, "column": height // 40, "zigzag": width // 50}[path]
    count = rng.randint(2, max(2, min(7, room)))
    edge = rng.choice(["black", "tab:blue", "tab:red", "dimgrey"])
    face = rng.choice(["white", "#dde8f5", "#f5e6d0", "#e3f1e0"])
    shape = rng.choice(["round", "square", "circle"])
    size = rng.choice([6, 7, 8])
    nodes = []
    for k in range(count):
        t = 1.5 + 7 * k / (count - 1)
        if path == "row":
            x, y = t, 5 + rng.uniform(-1.5, 1.5)
        elif path == "column":
            x, y = 5 + rng.uniform(-2, 2), 10 - t
        else:
            x, y = t, 8 if k % 2 == 0 else 2
        label = axes.text(
            x, y, rng.choice(DIAGRAM_LABELS), ha="center", va="center", fontsize=size,
            bbox={"boxstyle": f"{shape},pad=0.4", "facecolor": face, "edgecolor": edge},
        )  # fmt: skip
        nodes.append(label)
    for start, end in itertools.pairwise(nodes):
        axes.annotate(
            "", xy=end.get_position(), xytext=start.get_position(),
            arrowprops={
                "arrowstyle": "-|>", "color": edge,
                "patchA": start.get_bbox_patch(), "patchB": end.get_bbox_patch(),
            },
        )  # fmt: skip


def _composite(figure, rng: random.Random, width: int, height: int) -> None:
    """Panels of mixed kinds (plots, photos, diagrams) in up to three rows of uneven widths with
    white gaps between them, and each panel's letter ("A", "a" or "(a)", bold) at its top left:
    the multi-panel figures of papers. ``width`` × ``height``: the figure's pixels."""
    rows = rng.randint(1, max(1, min(3, height // 110)))
    counts = [rng.randint(1, max(1, min(3, width // 130))) for _ in range(rows)]
    if sum(counts) < 2:
        counts[0] = 2
    letters = rng.choice(PANEL_LETTERS)
    letter_size = rng.choice([8, 9, 10, 12])
    gap = rng.uniform(0.02, 0.05)
    row_height = (1 - gap * (rows - 1)) / rows
    letter_w, letter_h = 2.2 * letter_size / width, 1.6 * letter_size / height
    index = 0
    for row, count in enumerate(counts):
        shares = [rng.uniform(0.7, 1.3) for _ in range(count)]
        top, x = 1 - row * (row_height + gap), 0.0
        for share in shares:
            cell_width = (1 - gap * (count - 1)) * share / sum(shares)
            figure.text(
                x, top, letters[index % len(letters)], ha="left", va="top",
                fontsize=letter_size, fontweight="bold",
            )  # fmt: skip
            kind = rng.choices(["plot", "photo", "diagram"], [4, 4, 2])[0]
            if kind == "plot" and (cell_width * width < 110 or row_height * height < 80):
                kind = "photo"
            if kind == "plot":  # room for tick and axis labels left and below
                left, bottom = 42 / width, 32 / height
                axes = figure.add_axes(
                    (x + left, top - row_height + bottom, cell_width - left - 4 / width,
                     row_height - bottom - letter_h)
                )  # fmt: skip
                _axes_plot(axes, rng, rng.choice(["line", "bar", "scatter", "histogram"]))
            else:
                axes = figure.add_axes(
                    (x + letter_w, top - row_height, cell_width - letter_w, row_height - letter_h)
                )
                if kind == "photo":
                    pixels_w = max(8, int((cell_width - letter_w) * width))
                    pixels_h = max(8, int((row_height - letter_h) * height))
                    axes.imshow(np.asarray(_photo(pixels_w, pixels_h, rng)), aspect="auto")
                    axes.set_xticks([])
                    axes.set_yticks([])
                    axes.set_axis_off()
                else:
                    _diagram(
                        axes,
                        rng,
                        int((cell_width - letter_w) * width),
                        int((row_height - letter_h) * height),
                    )
            x += cell_width + gap
            index += 1


def _drawn_text(figure, image: Image.Image) -> PictureText:
    """The text artists of ``figure`` drawn into ``image`` (tick labels, axis labels, legend
    entries, titles: the non-empty ones with ink in their box, so not the labels of ticks
    outside the axes' view) with their ink boxes in the image's pixels (origin top left)."""
    from matplotlib.text import Text

    renderer = figure.canvas.get_renderer()
    grey = image.convert("L")
    text = PictureText()
    for artist in figure.findobj(Text):
        words = artist.get_text().strip()
        if not artist.get_visible() or not words:
            continue
        extent = artist.get_window_extent(renderer)
        x0, x1 = max(0, int(extent.x0)), min(image.width, int(np.ceil(extent.x1)))
        y0 = max(0, int(image.height - extent.y1))
        y1 = min(image.height, int(np.ceil(image.height - extent.y0)))
        if x1 <= x0 or y1 <= y0:
            continue
        ink = grey.crop((x0, y0, x1, y1)).point(lambda v: 255 if v < INK else 0).getbbox()
        if ink:
            left, top, right, bottom = ink
            text.boxes.append([x0 + left, y0 + top, right - left, bottom - top])
            text.words.append(words)
    return text


FIGURE_KINDS = {"plot": 4, "panels": 2, "composite": 3, "diagram": 1, "photo": 2}  # how often


def figure_image(
    width: int, height: int, rng: random.Random, kind: str | None = None
) -> tuple[Image.Image, PictureText]:
    """A figure of ``width`` × ``height`` pixels and the text drawn in it (none in a photo):
    ``kind`` one of :data:`FIGURE_KINDS` (one plot, a grid of plots, a composite of panels of
    mixed kinds, a diagram, a photo), by default drawn at their rates."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if kind is None:
        kind = rng.choices(list(FIGURE_KINDS), list(FIGURE_KINDS.values()))[0]
    elif kind not in FIGURE_KINDS:
        raise ValueError(f"figure kind {kind!r}: not one of {', '.join(FIGURE_KINDS)}")
    if kind == "photo":
        return _photo(width, height, rng), PictureText()
    dpi = 100
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    if kind == "composite":
        _composite(figure, rng, width, height)
    elif kind == "diagram":
        _diagram(figure.add_axes((0, 0, 1, 1)), rng, width, height)
    else:
        rows, cols = (1, 1) if kind == "plot" else rng.choice([(1, 2), (2, 2), (1, 3), (2, 1)])
        kinds = ["line", "bar", "scatter", "histogram", "heatmap"]
        for index in range(rows * cols):
            axes = figure.add_subplot(rows, cols, index + 1)
            _axes_plot(axes, rng, rng.choice(kinds))
            if rows * cols > 1:
                axes.set_title(f"({'abcdef'[index]})", fontsize=7)
        with warnings.catch_warnings():  # a crowded grid of panels keeps its default spacing
            warnings.simplefilter("ignore", UserWarning)
            figure.tight_layout(pad=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    image = Image.open(buffer).convert("RGB")
    text = _drawn_text(figure, image)
    if image.size != (width, height):  # rounding of the figure's size in inches
        sx, sy = width / image.width, height / image.height
        text.boxes = [
            [int(x * sx), int(y * sy), max(1, round(w * sx)), max(1, round(h * sy))]
            for x, y, w, h in text.boxes
        ]
        image = image.resize((width, height))
    return image, text


def equation_image(rng: random.Random, size: float) -> tuple[Image.Image, str]:
    """A display equation typeset by mathtext at ``size`` points (one point a pixel), cropped to
    its ink, and the line of plain text an OCR engine reads from it."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    template, reading = rng.choice(EQUATIONS)
    number = str(rng.randint(2, 9))
    text, reading = template.replace("%d", number), reading.replace("%d", number)
    buffer = io.BytesIO()
    mathtext.math_to_image(text, buffer, prop=FontProperties(size=size), dpi=72, format="png")
    image = Image.open(buffer).convert("RGBA")
    white = Image.new("RGBA", image.size, "white")
    image = Image.alpha_composite(white, image).convert("RGB")
    ink = Image.eval(image.convert("L"), lambda v: 255 - v).getbbox()
    return (image.crop(ink) if ink else image), reading
