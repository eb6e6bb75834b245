"""Synthetic pages that look like documents: the ``"document"`` style of
:func:`ditod.data.synthetic.generate`.

Each page draws its own style: serif or sans body text (STIX, DejaVu Serif or DejaVu Sans, as
matplotlib ships them) at 8.5–11 px, justified or ragged paragraphs wrapped at word boundaries
(hyphenated on some pages), first-line indents or gaps between paragraphs, one or two columns,
page sizes and margins of letter and A4 pages, and its section headings' look: numbered or not,
sentence case, title case or capitals, black, grey or blue, their second level italic or bold.
Pages carry running headers, page numbers, titles with authors and affiliations, abstracts,
section headings (common section names or phrases), bulleted and numbered lists, figures
(matplotlib plots, multi-panel plots, photo-like pictures) and ruled tables of numbers or of
wrapped words with their captions, column-spanning figures and tables on two-column pages,
display equations (mathtext), and on some pages the article's end: its declarations
("Funding", "Abbreviations", ...) and reference list. A share of pages are degraded as scans
are (rotated < 1°, blurred, noisy, grey, JPEG-compressed).

Every layout box is the ink of its block, every OCR line the exact text and ink box of a drawn
line (after the rotation, the box around its rotated corners). Text inside pictures is in the
OCR truth as an OCR engine reads it: a plot's tick labels, axis labels, legend entries and panel
titles each a line at its ink, an equation one line of plain text over its box (the model sees
at training what it sees on OCR'd pages); in the PDF variant they stay part of the picture.
"""

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from ..fonts import matplotlib_font
from .document_figures import equation_image, figure_image
from .document_text import CHINESE_TOKENS, TextSource
from .page_degrade import degrade

__all__ = ["LABELS", "DocumentPage"]

NO_LINE_START = set("，。、；：？！）》」』”’")  # no Chinese line begins with these

# Block kind -> (CDLA class, PubLayNet class; None: PubLayNet does not mark it).
LABELS = {
    "paragraph": ("Text", "text"),
    "title": ("Title", "title"),
    "heading": ("Title", "title"),
    "list": ("Text", "list"),
    "figure": ("Figure", "figure"),
    "figure caption": ("Figure caption", "text"),
    "table": ("Table", "table"),
    "table caption": ("Table caption", "text"),
    "equation": ("Equation", "text"),
    "reference": ("Reference", "text"),
    "header": ("Header", None),
    "footer": ("Footer", None),
}
FAMILIES = {
    "stix": ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf"),
    "dejavu-serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf"),
    "dejavu-sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf"),
}
PAGE_SIZES = ((612, 792), (595, 842))
CAPTION_LINES = 4  # at most
PARAGRAPH_SENTENCES = (2, 10)  # as tall as real papers' paragraphs (median 9% of the page)
REFERENCE_PAGES = 0.12  # share of pages on which the article ends in its reference list


@dataclass
class Style:
    """One page's typography and geometry, drawn at random."""

    body: tuple  # (regular, bold, italic) font paths
    heading: tuple
    heading_step: float  # first-level headings this much larger than the body
    heading_case: str  # of first-level headings: "sentence", "title" or "upper"
    heading_colour: tuple  # RGB
    numbered: bool  # section headings numbered ("2.", "2.1.")
    italic_subheadings: bool  # second-level headings italic, else bold at the body's size
    size: float
    leading: float
    justify: bool
    indent: int
    gap: int
    hyphenate: bool
    columns: int
    gutter: int
    margins: tuple  # left, top, right, bottom
    page: tuple  # width, height

    @classmethod
    def draw(cls, rng: random.Random, columns, font: str | None):
        if font:
            body = heading = (font,) * 3
        else:
            family = rng.choices(list(FAMILIES), [5, 2, 2])[0]
            body = tuple(matplotlib_font(name) for name in FAMILIES[family])
            heading_family = family if rng.random() < 0.7 else "dejavu-sans"
            heading = tuple(matplotlib_font(name) for name in FAMILIES[heading_family])
        indent = rng.choice([0, 10, 12, 15, 18])
        return cls(
            body=body,
            heading=heading,
            heading_step=rng.choice([0, 1, 1, 2, 3]),
            heading_case=rng.choices(["sentence", "title", "upper"], [6, 3, 1])[0],
            heading_colour=rng.choices([(0, 0, 0), (90, 90, 90), (25, 60, 130)], [8, 1, 1])[0],
            numbered=rng.random() < 0.5,
            italic_subheadings=rng.random() < 0.5,
            size=rng.choice([8.5, 9, 9.5, 10, 10.5, 11]),
            leading=rng.uniform(1.12, 1.4),
            justify=rng.random() < 0.8,
            indent=indent,
            gap=rng.randint(4, 9) if indent == 0 else rng.choice([0, 0, 2, 4]),
            hyphenate=rng.random() < 0.4,
            columns=rng.choice(list(columns)),
            gutter=rng.randint(14, 28),
            margins=(rng.randint(40, 80), rng.randint(45, 75), rng.randint(40, 80), 50),
            page=rng.choice(PAGE_SIZES),
        )


class DocumentPage:
    """One document page: ``image``, ``boxes`` (``(class, [x, y, w, h])``), ``ocr_boxes`` /
    ``ocr_words`` (one per line of text), ``picture_lines`` (the indices of those read from a
    figure or an equation, not drawn as text) and ``texts`` (``(x, baseline, text, size, font
    path, RGB)`` per drawn word, for the PDF variant)."""

    def __init__(self, rng, language, columns=(1, 2), font=None, publaynet=False, scanned=True):
        """``font``: one TrueType font for all text (needed for Chinese; default: the families
        above); ``publaynet``: label blocks with PubLayNet's classes, else CDLA's; ``scanned``:
        let a share of pages be degraded as scans (off for the born-digital PDF variant)."""
        self.rng, self.language, self.publaynet, self.scanned = rng, language, publaynet, scanned
        self.text = TextSource(rng, language)
        self.style = Style.draw(rng, columns, font)
        self.image = Image.new("RGB", self.style.page, "white")
        self.draw = ImageDraw.Draw(self.image)
        self.boxes, self.ocr_boxes, self.ocr_words, self.texts = [], [], [], []
        self.picture_lines: set[int] = set()
        self._fonts = {}
        self.counters = {"figure": rng.randint(0, 5), "table": rng.randint(0, 4), "eq": 0}

    # ---- drawing primitives
    def font(self, path: str, size: float):
        key = (path, round(size * 4))
        if key not in self._fonts:
            self._fonts[key] = ImageFont.truetype(path, size)
        return self._fonts[key]

    def add(self, kind: str, box) -> None:
        name = LABELS[kind][1 if self.publaynet else 0]
        x0, y0, x1, y1 = box
        if name is not None and x1 > x0 and y1 > y0:
            self.boxes.append((name, [x0, y0, x1 - x0, y1 - y0]))

    def words_line(self, x, y, words, font, width=None, justify=False, colour=(0, 0, 0)) -> tuple:
        """Draw ``words`` from ``(x, y)`` (top of the line) in ``colour``, spread to ``width``
        when ``justify``; record the line for OCR and its words for the PDF; return its ink
        box."""
        joiner = "" if self.language == "zh" else " "
        lengths = [font.getlength(w) for w in words]
        space = font.getlength(" ") if joiner else 0.0
        if justify and width and len(words) > 1:
            space = (width - sum(lengths)) / (len(words) - 1)
        ascent = font.getmetrics()[0]
        ink = None
        for word, length in zip(words, lengths):
            self.draw.text((x, y), word, fill=colour, font=font)
            left, top, right, bottom = font.getbbox(word)
            box = (x + left, y + top, x + right, y + bottom)
            ink = box if ink is None else _union(ink, box)
            self.texts.append((x, y + ascent, word, font.size, font.path, colour))
            x += length + space
        x0, y0, x1, y1 = (round(v) for v in ink)
        self.ocr_boxes.append([x0, y0, x1 - x0, y1 - y0])
        self.ocr_words.append(joiner.join(words))
        return x0, y0, x1, y1

    def picture_line(self, box, words: str) -> None:
        """Record a line of text an OCR engine reads in a picture, ``box`` ``[x, y, w, h]``."""
        self.picture_lines.add(len(self.ocr_boxes))
        self.ocr_boxes.append([int(v) for v in box])
        self.ocr_words.append(words)

    def wrap(self, text: str, font, width: float, indent=0.0, hyphenate=None) -> list[list[str]]:
        """``text`` broken into lines of words no wider than ``width`` (the first ``indent``
        narrower); English words hyphenated where the style says so; Chinese by character."""
        hyphenate = self.style.hyphenate if hyphenate is None else hyphenate
        tokens = CHINESE_TOKENS.findall(text) if self.language == "zh" else text.split()
        space = 0.0 if self.language == "zh" else font.getlength(" ")
        lines, line, used, room = [], [], 0.0, width - indent
        while tokens:
            word = tokens.pop(0)
            if word == " " and not line:  # a space in Chinese text never starts a line
                continue
            length = font.getlength(word)
            needed = length + (space if line else 0.0)
            closing = self.language == "zh" and word in NO_LINE_START and line
            if used + needed <= room or closing:  # Chinese closing punctuation hangs
                line.append(word)
                used += needed
                continue
            if hyphenate and self.language == "en" and line and len(word) >= 7 and word.isalpha():
                for cut in range(len(word) - 3, 2, -1):
                    head = word[:cut] + "-"
                    if used + space + font.getlength(head) <= room:
                        line.append(head)
                        word = word[cut:]
                        break
            if not line:  # a word wider than the line stands alone
                line.append(word)
                word = None
            while line[-1] == " ":
                line.pop()
            lines.append(line)
            line, used, room = [], 0.0, width
            if word is not None:
                tokens.insert(0, word)
        if line:
            lines.append(line)
        return lines

    def merge_last_lines(self) -> None:
        """The last two OCR lines as one (a list label drawn after its item's first line)."""
        box, text = self.ocr_boxes.pop(), self.ocr_words.pop()
        self.ocr_boxes[-1] = _xywh(_union(_xyxy(self.ocr_boxes[-1]), _xyxy(box)))
        self.ocr_words[-1] = f"{text} {self.ocr_words[-1]}"

    # ---- blocks
    def place_lines(self, flow, kind, step, draws) -> bool:
        """Call each of ``draws`` (draws one line at the flow's cursor, returns its ink box) a
        ``step`` apart, continuing in the next column when one is full (each column's part is
        its own ``kind`` block); False when the page is full first."""
        box = None
        for draw in draws:
            if not flow.fits(step):
                if box:
                    self.add(kind, box)
                    box = None
                if not flow.next_column():
                    return False
            ink = draw()
            box = ink if box is None else _union(box, ink)
            flow.y += step
        if box:
            self.add(kind, box)
        return True

    def lines_block(
        self, flow, kind, lines, font, indent=0.0, hanging=0.0, justify=None, colour=(0, 0, 0)
    ) -> bool:
        """Place wrapped ``lines`` in the flow (:meth:`place_lines`), the first indented by
        ``indent``, the others by ``hanging``, all but the last justified when ``justify``."""
        justify = self.style.justify if justify is None else justify

        def draw(index, words):
            offset = indent if index == 0 else hanging
            last = index == len(lines) - 1
            width = flow.width - offset
            return self.words_line(
                flow.x + offset, flow.y, words, font, width, justify and not last, colour
            )

        draws = [lambda i=i, w=w: draw(i, w) for i, w in enumerate(lines)]
        if not self.place_lines(flow, kind, font.size * self.style.leading, draws):
            return False
        flow.y += self.style.gap
        return True

    def paragraph(self, flow, sentences=None) -> bool:
        font = self.font(self.style.body[0], self.style.size)
        text = self.text.paragraph(sentences or self.rng.randint(*PARAGRAPH_SENTENCES))
        lines = self.wrap(text, font, flow.width, self.style.indent)
        return self.lines_block(flow, "paragraph", lines, font, indent=self.style.indent)

    def heading(self, flow, number) -> bool:
        """A section heading (its first level larger, the second italic or bold at the body's
        size), numbered on pages whose style numbers them (Chinese pages always), in the page's
        heading colour and case; a common section name or a phrase."""
        style, english = self.style, self.language == "en"
        first_level = self.rng.random() < 0.6
        if first_level:
            font = self.font(style.heading[1], style.size + style.heading_step)
            text = self.text.section_name() if self.rng.random() < 0.5 else self.text.title((1, 7))
        else:
            font = self.font(style.heading[2 if style.italic_subheadings else 1], style.size)
            text = self.text.title((2, 8))
        if english and style.heading_case == "title":
            text = " ".join(w[:1].upper() + w[1:] if len(w) > 3 else w for w in text.split())
        elif english and first_level and style.heading_case == "upper":
            text = text.upper()
        if style.numbered or not english:
            label = str(number) if first_level else f"{number}.{self.rng.randint(1, 4)}"
            text = f"{label}{'.' if english else ''} {text}"
        return self.heading_block(flow, text, font, style.heading_colour)

    def heading_block(self, flow, text, font, colour=(0, 0, 0)) -> bool:
        """``text`` as a heading block where two lines of text fit after it (else at the next
        column's top)."""
        lines = self.wrap(text, font, flow.width)
        room = font.size * self.style.leading * (len(lines) + 2) + 6  # two lines of text after
        if not flow.fits(room) and not flow.next_column():
            return False
        flow.y += self.rng.randint(3, 8)
        ok = self.lines_block(flow, "heading", lines, font, justify=False, colour=colour)
        flow.y += 2
        return ok

    def bullet_list(self, flow) -> bool:
        font = self.font(self.style.body[0], self.style.size)
        marker = self.rng.choice(["•", "–", "number", "paren"])
        hang = font.getlength("(iv) ") if marker == "paren" else font.getlength("10. ")
        lines = []
        for index in range(self.rng.randint(2, 5)):
            label = {"number": f"{index + 1}.", "paren": f"({'abcdef'[index]})"}.get(marker, marker)
            item = self.wrap(self.text.paragraph(self.rng.randint(1, 2)), font, flow.width - hang)
            lines.append((label, item))
        step = font.size * self.style.leading
        needed = sum(len(item) for _, item in lines) * step
        if not flow.fits(min(needed, 3 * step)) and not flow.next_column():
            return False

        def draw(label, index, words):
            ink = self.words_line(flow.x + hang, flow.y, words, font, flow.width - hang, False)
            if index == 0:  # the label and the item's first line are one OCR line
                ink = _union(ink, self.words_line(flow.x, flow.y, [label], font))
                self.merge_last_lines()
            return ink

        draws = [
            lambda label=label, i=i, w=w: draw(label, i, w)
            for label, item in lines
            for i, w in enumerate(item)
        ]
        if not self.place_lines(flow, "list", step, draws):
            return False
        flow.y += self.style.gap + 2
        return True

    def caption(self, flow, kind, width, x) -> None:
        """A caption ("Figure N." / "Table N." and 1–3 sentences) of at most ``CAPTION_LINES``
        lines from ``(x, flow.y)``, its first line bold."""
        font = self.font(self.style.body[0], self.style.size - 0.5)
        bold = self.font(self.style.body[1], self.style.size - 0.5)
        self.counters[kind] += 1
        if self.language == "zh":
            label = f"{'图' if kind == 'figure' else '表'}{self.counters[kind]}："
        else:
            name = "Table" if kind == "table" else self.rng.choice(["Figure", "Fig."])
            label = f"{name} {self.counters[kind]}."
        space = "" if self.language == "zh" else " "
        text = label + space + self.text.paragraph(self.rng.randint(1, 3))
        lines = self.wrap(text, bold, width)[:CAPTION_LINES]  # the bold first line fits too
        step = font.size * self.style.leading
        box = None
        for index, words in enumerate(lines):
            ink = self.words_line(x, flow.y, words, bold if index == 0 else font, width, False)
            box = ink if box is None else _union(box, ink)
            flow.y += step
        self.add(f"{kind} caption", box)

    def picture(self, flow, span: bool = False) -> bool:
        width = flow.full_width if span else flow.width
        fig_width = int(width * self.rng.uniform(0.55, 1.0))
        height = int(fig_width * self.rng.uniform(0.45, 0.85))
        caption_room = CAPTION_LINES * self.style.size * self.style.leading
        if not flow.fits(height + caption_room + 18):
            return False
        x = int((flow.left if span else flow.x) + (width - fig_width) / 2)
        flow.y += 4
        picture, text = figure_image(fig_width, height, self.rng)
        self.image.paste(picture, (x, int(flow.y)))
        self.add("figure", (x, int(flow.y), x + fig_width, int(flow.y) + height))
        for (left, top, w, h), words in zip(text.boxes, text.words):
            self.picture_line((x + left, int(flow.y) + top, w, h), words)
        flow.y += height + 6
        self.caption(flow, "figure", width, flow.left if span else flow.x)
        flow.y += 8
        return True

    def table(self, flow, span: bool = False) -> bool:
        """A ruled table under its caption: numbers in centred columns, or (half the tables)
        words and phrases wrapped in left-aligned cells of one to four lines, as tables of
        definitions and study designs are set."""
        width = flow.full_width if span else flow.width
        x0 = flow.left if span else flow.x
        size = self.style.size - self.rng.choice([0, 0.5, 1])
        font, bold = self.font(self.style.body[0], size), self.font(self.style.body[1], size)
        wide = span or self.style.columns == 1
        words = self.rng.random() < 0.5
        columns = (
            self.rng.randint(2, 5 if wide else 3)
            if words
            else self.rng.randint(3, 7 if wide else 4)
        )
        rows = self.rng.randint(3, 9 if words else 12)
        cell_width = width / columns
        if words:
            phrase = (1, max(3, int(cell_width / size)))  # up to ~3 lines a cell
            body = [
                [self.text.title((1, 3))] + [self.text.title(phrase) for _ in range(columns - 1)]
                for _ in range(rows)
            ]
        else:
            body = [[self.text.title((1, 2))] + [self.text.number() for _ in range(columns - 1)]]
            body += [
                [self.text.title((1, 3))] + [self.text.number() for _ in range(columns - 1)]
                for _ in range(rows - 1)
            ]
        cells = [[self.text.title((1, 2)) for _ in range(columns)], *body]
        step = size * (1.3 if words else 1.45)
        wrapped = [
            [
                self.wrap(value, bold if r == 0 else font, cell_width - 8, hyphenate=False)
                for value in row
            ]
            for r, row in enumerate(cells)
        ]
        if not words:  # numbers and short names: one line a cell
            wrapped = [[lines[:1] for lines in row] for row in wrapped]
        heights = [max(len(lines) for lines in row) for row in wrapped]
        caption_room = CAPTION_LINES * self.style.size * self.style.leading
        needed = sum(heights) * step + len(heights) * 4 + caption_room + 20
        if not flow.fits(needed):
            return False
        flow.y += 4
        self.caption(flow, "table", width, x0)
        flow.y += 3
        top = flow.y
        self.draw.line([x0, top, x0 + width, top], fill="black", width=self.rng.choice([1, 2]))
        flow.y += 3
        grid = self.rng.random() < 0.2
        for r, (row, height) in enumerate(zip(wrapped, heights)):
            for c, lines in enumerate(row):
                cell_font = bold if r == 0 else font
                for index, line in enumerate(lines):
                    length = cell_font.getlength(" ".join(line))
                    centred = not words and c > 0
                    x = x0 + c * cell_width + ((cell_width - length) / 2 if centred else 4)
                    self.words_line(x, flow.y + index * step, line, cell_font)
            flow.y += height * step + (4 if words else 0)
            if r == 0 or grid:
                self.draw.line([x0, flow.y, x0 + width, flow.y], fill="black")
                flow.y += 2
        bottom = flow.y + 1
        self.draw.line(
            [x0, bottom, x0 + width, bottom], fill="black", width=self.rng.choice([1, 2])
        )
        if grid:
            for c in range(columns + 1):
                x = x0 + c * cell_width
                self.draw.line([x, top, x, bottom], fill="black")
        self.add("table", (int(x0), int(top), int(x0 + width) + 1, int(bottom) + 2))
        flow.y = bottom + 10
        return True

    def equation(self, flow) -> bool:
        picture, reading = equation_image(self.rng, self.style.size + 2)
        if not flow.fits(picture.height + 16) or picture.width > flow.width - 40:
            return False
        flow.y += 6
        x = flow.x + (flow.width - picture.width) // 2
        self.image.paste(picture, (int(x), int(flow.y)))
        self.add(
            "equation", (int(x), int(flow.y), int(x) + picture.width, int(flow.y) + picture.height)
        )
        self.picture_line((x, flow.y, picture.width, picture.height), reading)
        self.counters["eq"] += 1
        font = self.font(self.style.body[0], self.style.size)
        label = f"({self.counters['eq']})"
        middle = flow.y + picture.height / 2 - font.size / 2
        self.words_line(flow.x + flow.width - font.getlength(label), middle, [label], font)
        flow.y += picture.height + 10
        return True

    def back_matter(self, flow) -> bool:
        """The declarations papers end with: 2–5 short sections ("Funding", "Abbreviations",
        ...), each a small bold heading and a sentence or two in a smaller font (English)."""
        heading = self.font(self.style.heading[1], self.style.size - 0.5)
        font = self.font(self.style.body[0], self.style.size - 1)
        for name in self.text.declarations(self.rng.randint(2, 5)):
            if not self.heading_block(flow, name, heading):
                return False
            lines = self.wrap(self.text.paragraph(self.rng.randint(1, 2)), font, flow.width)
            if not self.lines_block(flow, "paragraph", lines, font, justify=False):
                return False
        return True

    def references(self, flow) -> None:
        """A "References" heading and numbered entries in a smaller font, to the page's end."""
        heading = self.font(self.style.heading[1], self.style.size + 1)
        label = "References" if self.language == "en" else "参考文献"
        if not self.lines_block(flow, "heading", [[label]], heading, justify=False):
            return
        font = self.font(self.style.body[0], self.style.size - 1)
        hang = font.getlength("[10] ")
        number = 1
        while True:
            names = self.text.names(self.rng.randint(1, 4))
            entry = f"[{number}] {names}. {self.text.title((5, 12))}. {self.text.title((1, 3))} "
            entry += f"{self.rng.randint(1980, 2024)}; {self.rng.randint(1, 80)}: "
            entry += f"{self.rng.randint(1, 900)}–{self.rng.randint(901, 999)}."
            lines = self.wrap(entry, font, flow.width - hang)
            if not self.lines_block(flow, "reference", lines, font, hanging=hang, justify=False):
                return
            number += 1

    # ---- the page
    def front_matter(self, flow) -> None:
        style = self.style
        title_font = self.font(style.heading[1], self.rng.choice([14, 16, 18, 20]))
        lines = self.wrap(self.text.title((6, 16)), title_font, flow.full_width * 0.9)
        flow.y += 6
        self.lines_block(flow, "title", lines, title_font, justify=False)
        authors = self.text.names(self.rng.randint(2, 6))
        font = self.font(style.body[0], style.size + 1)
        self.lines_block(
            flow, "paragraph", self.wrap(authors, font, flow.full_width), font, justify=False
        )
        small = self.font(style.body[2], style.size - 1)
        affiliation = self.text.title((5, 10)) + self.text.comma + self.text.name()
        self.lines_block(
            flow, "paragraph", self.wrap(affiliation, small, flow.full_width), small, justify=False
        )
        flow.y += 6
        if self.rng.random() < 0.8:
            font = self.font(style.body[0], style.size - 0.5)
            label = "Abstract:" if self.language == "en" else "摘要："
            text = (
                label
                + ("" if self.language == "zh" else " ")
                + self.text.paragraph(self.rng.randint(3, 6))
            )
            self.lines_block(flow, "paragraph", self.wrap(text, font, flow.full_width), font)
        flow.y += 8

    def furniture(self) -> None:
        style, (width, height) = self.style, self.style.page
        left, top, right, bottom = style.margins
        font = self.font(style.body[2], style.size - 1.5)
        number = str(self.rng.randint(1, 2000))
        if self.rng.random() < 0.8:
            text = self.text.title((2, 5)) + f" {self.rng.randint(1990, 2024)}"
            y = top - self.rng.randint(22, 30)
            self.add("header", self.words_line(left, y, text.split(), font))
            if self.rng.random() < 0.5:
                x = width - right - font.getlength(number)
                self.add("header", self.words_line(x, y, [number], font))
                return
        x = (width - font.getlength(number)) / 2
        self.add("footer", self.words_line(x, height - bottom + 18, [number], font))

    def render(self) -> None:
        style = self.style
        flow = Flow(style)
        self.furniture()
        if self.rng.random() < 0.25:
            self.front_matter(flow)
        if style.columns == 2 and self.rng.random() < 0.3:
            (self.picture if self.rng.random() < 0.6 else self.table)(flow, span=True)
        flow.split_columns()
        section = self.rng.randint(1, 6)
        # where the article ends, drawn per page so that longer blocks do not make it rarer
        ends_at = self.rng.uniform(0.15, 0.7) if self.rng.random() < REFERENCE_PAGES else None
        blocks = ["paragraph", "heading", "list", "figure", "table", "equation"]
        weights = [10, 2, 1.2, 1.5, 1.2, 0.8]
        while True:
            kind = self.rng.choices(blocks, weights)[0]
            if kind == "heading":
                section += 1
                placed = self.heading(flow, section)
            elif kind == "list":
                placed = self.bullet_list(flow)
            elif kind == "figure":
                placed = self.picture(flow) or self.paragraph(flow)
            elif kind == "table":
                placed = self.table(flow) or self.paragraph(flow)
            elif kind == "equation":
                placed = self.equation(flow) or self.paragraph(flow)
            else:
                placed = self.paragraph(flow)
            if not placed or flow.done():
                break
            if ends_at is not None and flow.progress() >= ends_at:
                if self.language == "en" and self.rng.random() < 0.5 and not self.back_matter(flow):
                    break
                self.references(flow)
                break
        if self.scanned:
            self.image, self.boxes, self.ocr_boxes = degrade(
                self.image, self.boxes, self.ocr_boxes, self.rng
            )


class Flow:
    """Where the next block goes: a cursor down the body's columns."""

    def __init__(self, style: Style):
        width, height = style.page
        left, top, right, bottom = style.margins
        self.left, self.full_width = left, width - left - right
        self.top, self.bottom = top, height - bottom
        self.columns, self.index = [(left, self.full_width)], 0
        self.style = style
        self.y = float(top)

    @property
    def x(self) -> float:
        return self.columns[self.index][0]

    @property
    def width(self) -> float:
        return self.columns[self.index][1]

    def split_columns(self) -> None:
        if self.style.columns == 2:
            gutter = self.style.gutter
            half = (self.full_width - gutter) / 2
            self.columns = [(self.left, half), (self.left + half + gutter, half)]
        self.top = self.y

    def fits(self, height: float) -> bool:
        return self.y + height <= self.bottom

    def next_column(self) -> bool:
        if self.index + 1 >= len(self.columns):
            return False
        self.index += 1
        self.y = self.top
        return True

    def progress(self) -> float:
        """Share of the body (all columns below the column top) filled so far, 0–1."""
        height = max(self.bottom - self.top, 1.0)
        filled = min(max(self.y - self.top, 0.0), height) / height
        return (self.index + filled) / len(self.columns)

    def done(self) -> bool:
        return self.index == len(self.columns) - 1 and not self.fits(2 * self.style.size)


def _union(a, b) -> tuple:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _xyxy(box) -> tuple:
    return (box[0], box[1], box[0] + box[2], box[1] + box[3])


def _xywh(box) -> list:
    x0, y0, x1, y1 = (round(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]
