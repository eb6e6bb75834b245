"""OCR-like errors for exact text: a model trained on a page generator's (or a PDF's) exact text
meets an OCR engine's at inference, whose words are split ("immuta ble"), run together
("versionof") and misread ("fommat", "tbo").

Measured on the demo's held-out pages (5,799 words), the default engine against the exact text:
~4% of words split by a space, ~1.4% run into the next, ~7.5% of the rest with one or two
characters misread (m→n, r→n, a→u, h→l, …) or dropped (most often r, t, s, punctuation). With
the model trained on exact text, its held-out pages gave 76% of the blocks found from their
exact text and 66% from their OCR."""

__all__ = ["CONFUSIONS", "ocr_noise", "with_ocr_noise"]

# Characters an OCR engine reads as others at low resolution (measured and the classic pairs).
CONFUSIONS = {
    "m": ("n", "rn"), "n": ("r", "m"), "r": ("n",), "a": ("u", "o"), "h": ("l", "b"),
    "t": ("f", "l"), "e": ("c",), "o": ("b", "0"), "b": ("h", "t"), "l": ("k", "1", "I"),
    "c": ("e",), "i": ("l", "1"), "rn": ("m",), "na": ("m",), "u": ("a", "n"), ",": (".",),
    "O": ("0",), "I": ("l", "1"), "S": ("5",), "’": ("'",), '"': ("°", "''"),
}  # fmt: skip
# Of the words an engine gets wrong: misread characters, split by a space, run into the next.
ERROR_SHARES = (0.6, 0.28, 0.12)


def _misread(word: str, rng) -> str:
    """``word`` with one character (or pair) read as another, or dropped."""
    spots = [(i, key) for key in CONFUSIONS for i in range(len(word)) if word.startswith(key, i)]
    if spots and rng.random() < 0.55:
        i, key = spots[rng.randint(len(spots))]
        options = CONFUSIONS[key]
        return word[:i] + options[rng.randint(len(options))] + word[i + len(key) :]
    i = rng.randint(len(word))
    return word[:i] + word[i + 1 :]


def ocr_noise(line: str, rate: float, rng) -> str:
    """``line`` with about ``rate`` of its space-separated words read as an OCR engine misreads
    them (:data:`ERROR_SHARES`): characters misread or dropped, a word split in two, a word run
    into the next. Single-character words are only run into the next. ``rng``: numpy's
    ``RandomState`` or the ``np.random`` module (``random()``, ``randint(n)``)."""
    words = line.split(" ")
    out = []
    index = 0
    while index < len(words):
        word = words[index]
        if word and rng.random() < rate:
            kind = rng.random()
            if kind < ERROR_SHARES[2] and index + 1 < len(words):
                words[index + 1] = word + words[index + 1]  # run into the next
                index += 1
                continue
            if len(word) > 1:
                if kind < ERROR_SHARES[2] + ERROR_SHARES[1]:
                    cut = 1 + rng.randint(len(word) - 1)
                    word = word[:cut] + " " + word[cut:]
                else:
                    word = _misread(word, rng) or word
        out.append(word)
        index += 1
    return " ".join(out)


def with_ocr_noise(page: dict, rate: float, rng, words_per_line: int | None = None) -> dict:
    """A copy of an OCR page dict (``words``: one string a line, ``bbox``, ``W``, ``H``) with
    :func:`ocr_noise` applied to every line; boxes and everything else as they were.
    ``words_per_line``: each line cut to its first this many words first (for a tokenizer that
    keeps only a line's first tokens, the rest cannot reach the model: not worth misreading and
    tokenizing on every read)."""
    words = [
        ocr_noise(" ".join(line.split(" ")[:words_per_line]), rate, rng)
        if isinstance(line, str)
        else line
        for line in page.get("words", [])
    ]
    return {**page, "words": words}
