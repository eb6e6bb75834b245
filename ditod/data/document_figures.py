"""Pictures for synthetic documents: matplotlib plots of several kinds (lines, bars, scatter,
histograms, heat maps, multi-panel), photo-like textures, and display equations (matplotlib
mathtext), each rendered to a ``PIL.Image`` of the size asked for. Uses matplotlib's object API
(no pyplot state), so pages can render in worker processes."""

import io
import random
import warnings

import numpy as np
from PIL import Image

__all__ = ["equation_image", "figure_image"]

EQUATIONS = (
    r"$E = m c^{2} + \sum_{i=1}^{%d} x_i^{2}$",
    r"$f(x) = \frac{1}{\sqrt{2\pi\sigma^{2}}}\,e^{-\frac{(x-\mu)^{2}}{2\sigma^{2}}}$",
    r"$\mathcal{L} = -\sum_{c=1}^{%d} y_c \log p_c + \lambda \|w\|^{2}$",
    r"$\hat{y}_t = \alpha\, y_{t-1} + (1-\alpha)\, \hat{y}_{t-%d}$",
    r"$\int_{0}^{\infty} e^{-%d x}\, dx = \frac{1}{%d}$",
    r"$R^{2} = 1 - \frac{\sum_i (y_i - \hat{y}_i)^{2}}{\sum_i (y_i - \bar{y})^{2}}$",
    r"$\mathbf{x}^{T} A\, \mathbf{x} \geq %d \, \|\mathbf{x}\|^{2}$",
    r"$\nabla \cdot \mathbf{E} = \frac{\rho}{\epsilon_{0}}, \quad k = %d$",
)


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


def figure_image(width: int, height: int, rng: random.Random) -> Image.Image:
    """A figure of ``width`` × ``height`` pixels: one plot, a grid of panels, or a photo."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kind = rng.choices(["plot", "panels", "photo"], [5, 3, 2])[0]
    if kind == "photo":
        return _photo(width, height, rng)
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
    return image.resize((width, height)) if image.size != (width, height) else image


def equation_image(rng: random.Random, size: float) -> Image.Image:
    """A display equation typeset by mathtext at ``size`` points (one point a pixel), cropped to
    its ink."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    template = rng.choice(EQUATIONS)
    text = template.replace("%d", str(rng.randint(2, 9)))
    buffer = io.BytesIO()
    mathtext.math_to_image(text, buffer, prop=FontProperties(size=size), dpi=72, format="png")
    image = Image.open(buffer).convert("RGBA")
    white = Image.new("RGBA", image.size, "white")
    image = Image.alpha_composite(white, image).convert("RGB")
    ink = Image.eval(image.convert("L"), lambda v: 255 - v).getbbox()
    return image.crop(ink) if ink else image
