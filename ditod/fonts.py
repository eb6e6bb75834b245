"""Fonts the project draws with: the TrueType fonts matplotlib ships (DejaVu, STIX), and a CJK
font for Chinese pages, PDFs and overlay labels, which matplotlib does not ship
(``scripts/install.sh`` installs ``fonts-wqy-microhei`` where it can)."""

from pathlib import Path

__all__ = ["CJK_FONTS", "cjk_fonts", "find_cjk_font", "matplotlib_font"]

CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


def cjk_fonts() -> list[str]:
    """The installed fonts of :data:`CJK_FONTS`, in its order of preference."""
    return [path for path in CJK_FONTS if Path(path).is_file()]


def find_cjk_font() -> str:
    """The preferred installed CJK font; raises naming what to install when there is none."""
    found = cjk_fonts()
    if not found:
        raise FileNotFoundError(
            "no CJK font found (looked in " + ", ".join(CJK_FONTS) + "); install one with "
            "`apt-get install fonts-wqy-microhei` (scripts/install.sh does, as root) or pass --font"
        )
    return found[0]


def matplotlib_font(name: str) -> str:
    """Path of the TrueType font ``name`` (e.g. ``"DejaVuSans.ttf"``) that matplotlib ships."""
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name)
