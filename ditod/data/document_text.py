"""Text for synthetic documents: English sentences from a corpus that ships with Python (the
prose of ``pydoc_data.topics``, the language reference's ~450,000 characters), with numbers,
citations and units mixed in the way papers write them; Chinese sentences from a character
vocabulary with full-width punctuation. Everything is drawn from a ``random.Random``, so a seed
gives the same text."""

import functools
import random
import re

__all__ = ["TextSource"]

CHINESE_CHARACTERS = (
    "文档版面分析模型页面文本区域特征网络训练数据结果方法表格图像准确率基线实验识别检测"
    "我们提出了一种基于深度学习的新方法在多个公开数据集上进行评估并与现有工作比较其性能显著"
    "提高本文研究问题系统设计实现过程中主要包括以下几个部分首先其次最后通过大量验证表明该"
)
# Latin words and numbers as Chinese papers write them among the characters
CHINESE_LATIN_TERMS = (
    "CNN", "Transformer", "LayoutLMv3", "OCR", "GPU", "mAP", "IoU", "ResNet-50", "PDF", "BERT",
)  # fmt: skip
# Chinese text wraps between characters, but not inside a Latin word or number ("ResNet-50",
# "95.2%"), and a space around one is a token of its own
CHINESE_TOKENS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.%\-]*| |.")
# First-level section names as papers print them (half of the first-level headings)
SECTION_NAMES = {
    "en": (
        "Introduction", "Background", "Methods", "Materials and methods", "Results",
        "Discussion", "Conclusions", "Conclusion", "Related work", "Statistical analysis",
        "Study design", "Participants", "Data collection", "Limitations", "Experimental section",
        "Case presentation", "Results and discussion", "Methods and materials",
    ),
    "zh": ("引言", "相关工作", "方法", "实验", "实验结果", "讨论", "结论", "研究方法"),
}  # fmt: skip
# The short sections an article ends with before its references
DECLARATIONS = (
    "Abbreviations", "Acknowledgements", "Funding", "Competing interests",
    "Authors' contributions", "Availability of data and materials", "Consent for publication",
    "Ethics approval and consent to participate", "Supplementary material", "Conflict of interest",
)  # fmt: skip
_MARKUP = re.compile(r"[*`|<>{}\[\]\\_=#~^]")


@functools.cache
def english_sentences() -> tuple[str, ...]:
    """Sentences of plain prose (40–240 characters, no code or markup) from the Python language
    reference that ``pydoc_data`` ships."""
    from pydoc_data.topics import topics

    sentences = []
    for text in topics.values():
        for paragraph in re.split(r"\n\s*\n", text):
            if paragraph[:1].isspace() or "::" in paragraph or set(paragraph.strip()) <= set("*=-"):
                continue
            flat = " ".join(paragraph.split())
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat):
                plain = 40 <= len(sentence) <= 240 and not _MARKUP.search(sentence)
                if plain and sentence[0].isupper() and sentence[-1] in ".!?":
                    sentences.append(sentence)
    return tuple(sentences)


class TextSource:
    """Sentences, titles, names and numbers in ``language`` ("en" or "zh")."""

    def __init__(self, rng: random.Random, language: str = "en"):
        self.rng, self.language = rng, language

    def sentence(self) -> str:
        rng = self.rng
        if self.language == "zh":
            length = rng.randint(12, 40)
            body = "".join(rng.choice(CHINESE_CHARACTERS) for _ in range(length))
            if rng.random() < 0.5:
                cut = rng.randint(4, length - 4)
                body = body[:cut] + "，" + body[cut:]
            roll = rng.random()
            if roll < 0.3:  # a Latin term, spaced as most Chinese papers space it
                cut = rng.randint(2, length - 2)
                body = f"{body[:cut]} {rng.choice(CHINESE_LATIN_TERMS)} {body[cut:]}"
                body = re.sub(r"(?<=，) | (?=，)", "", body)  # no space next to a full-width comma
            elif roll < 0.45:  # a measured value
                cut = rng.randint(2, length - 2)
                body = f"{body[:cut]}{rng.uniform(1, 99):.1f}%{body[cut:]}"
            return body + "。"
        sentence = rng.choice(english_sentences())
        roll = rng.random()
        if roll < 0.15:  # a citation
            sentence = f"{sentence[:-1]} [{rng.randint(1, 60)}]{sentence[-1]}"
        elif roll < 0.25:  # a measured value
            value = f"{rng.uniform(0.1, 99):.{rng.randint(1, 2)}f}"
            unit = rng.choice(["%", " ms", " mm", " kg", "°C", " (p < 0.05)", " ± 0.3"])
            sentence = f"{sentence[:-1]} ({value}{unit}){sentence[-1]}"
        return sentence

    def paragraph(self, sentences: int) -> str:
        joiner = "" if self.language == "zh" else " "
        return joiner.join(self.sentence() for _ in range(sentences))

    def title(self, words: tuple[int, int] = (4, 12)) -> str:
        """A title-like phrase: the start of a sentence, without its final stop."""
        if self.language == "zh":  # cut between characters, never inside a Latin term
            tokens = CHINESE_TOKENS.findall(self.sentence())[: self.rng.randint(6, 16)]
            return "".join(tokens).strip().rstrip("，")
        text = self.rng.choice(english_sentences()).rstrip(".!?").split()
        return " ".join(text[: self.rng.randint(*words)]).rstrip(",;:")

    def section_name(self) -> str:
        """A common first-level section name ("Methods", "Discussion", ...)."""
        return self.rng.choice(SECTION_NAMES[self.language])

    def declarations(self, count: int) -> list[str]:
        """``count`` different back-matter section names ("Funding", ...), in a paper's order."""
        picked = self.rng.sample(range(len(DECLARATIONS)), count)
        return [DECLARATIONS[i] for i in sorted(picked)]

    def name(self) -> str:
        if self.language == "zh":
            return "".join(self.rng.choice(CHINESE_CHARACTERS) for _ in range(3))
        first = self.rng.choice("ABCDEFGHJKLMNPRSTW")
        last = self.rng.choice(english_sentences()).split()[-1].strip(".!?,").capitalize()
        return f"{first}. {last}"

    @property
    def comma(self) -> str:
        return "，" if self.language == "zh" else ", "

    def names(self, count: int) -> str:
        """``count`` names as an author list ("A. Smith, B. Jones"; Chinese: "张三、李四")."""
        return ("、" if self.language == "zh" else ", ").join(self.name() for _ in range(count))

    def number(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.5:
            return f"{rng.uniform(0, 100):.{rng.randint(1, 2)}f}"
        if kind < 0.75:
            return str(rng.randint(1, 5000))
        if kind < 0.9:
            return f"{rng.uniform(0, 10):.2f} ± {rng.uniform(0, 1):.2f}"
        return "<0.001"
