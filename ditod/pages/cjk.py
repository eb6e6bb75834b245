"""Scripts written without spaces between words (Chinese, Japanese, Korean): telling their
characters apart, and joining their lines without the spaces Latin text needs."""

__all__ = ["is_cjk_char", "is_cjk_text", "join_lines"]


def is_cjk_char(char: str) -> bool:
    """A CJK ideograph, kana, hangul, CJK punctuation or full-width form."""
    code = ord(char)
    return (
        0x3400 <= code <= 0x9FFF  # CJK ideographs (with extension A)
        or 0x3040 <= code <= 0x30FF  # kana
        or 0xAC00 <= code <= 0xD7AF  # hangul
        or 0xF900 <= code <= 0xFAFF
        or 0x3000 <= code <= 0x303F  # CJK punctuation
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
    )


def is_cjk_text(text: str) -> bool:
    """Whether most of ``text``'s glyphs (spaces aside) are CJK."""
    glyphs = [c for c in text if not c.isspace()]
    return bool(glyphs) and sum(map(is_cjk_char, glyphs)) >= 0.5 * len(glyphs)


def join_lines(lines) -> str:
    """Text lines of one block as running text: a space between two lines, but none where a
    CJK character ends one line and another begins the next (a Chinese sentence broken across
    lines has no space there)."""
    text = ""
    for line in (line.strip() for line in lines):
        if not line:
            continue
        if text and not (is_cjk_char(text[-1]) and is_cjk_char(line[0])):
            text += " "
        text += line
    return text
