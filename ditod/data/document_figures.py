"""Pictures for synthetic documents: matplotlib plots of several kinds (lines, bars, scatter,
histograms, heat maps, multi-panel), photo-like textures, and display equations (matplotlib
mathtext), each rendered to a ``PIL.Image`` of the size asked for, with the text an OCR engine
reads in it: a plot's tick labels, axis labels, legend entries and panel titles at their ink
boxes, an equation as one line of plain text. Uses matplotlib's object API (no pyplot state), so
pages can render in worker processes."""

import io
import random
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

__all__ = ["PictureText", "equation_image", "figure_image"]

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


def _photo(width: int, height: int, rng: random.Random) -> Image.Image:
    """A smooth random texture in colour or grey: a micrograph, a photograph of a scene."""
    generator = np.random.default_rng(rng.randrange(2**32))
    coarse = generator.random((max(2, height // 24), max(2, width // 24), 3))
    image = Image.fromarray((coarse * 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    if rng.random() < 0.4:
        image = image.convert("L").convert("RGB")
    return image


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


def figure_image(width: int, height: int, rng: random.Random) -> tuple[Image.Image, PictureText]:
    """A figure of ``width`` × ``height`` pixels (one plot, a grid of panels, or a photo) and the
    text drawn in it (none in a photo)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kind = rng.choices(["plot", "panels", "photo"], [5, 3, 2])[0]
    if kind == "photo":
        return _photo(width, height, rng), PictureText()
    dpi = 100
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
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
