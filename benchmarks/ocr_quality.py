"""How well the default OCR engine reads English and Chinese pages: character recall and
precision against the generator's known text, born-digital and scan-like pages, and pages/s.

    python benchmarks/ocr_quality.py [--pages 8] [--out benchmarks/results/ocr_quality.json]

Pages come from the document-style generator (:mod:`ditod.data.document_pages`): Chinese pages
mix in Latin terms and numbers; "scanned" pages are the generator's default, a share of them
blurred, noisy, greyed, rotated < 1° and JPEG-compressed; "born-digital" ones are not. Each set
goes through ``run_ocr_jobs`` as ``tools/ocr_pages.py`` runs it (default engine and worker
layout, start-up included). Recall and precision: :func:`ditod.pages.text_match.character_match`
(each read line aligned, character by character, with the known line it overlaps most; spaces
not counted; text inside figures is not in the known text, so reading it costs precision).
"""

import argparse
import tempfile
from pathlib import Path

from _harness import stopwatch, write_result

from ditod.data import synthetic
from ditod.pages.ocr_json import read_ocr_json
from ditod.pages.ocr_runner import PageJob, available_cores, default_layout, run_ocr_jobs
from ditod.pages.text_match import CharacterMatch, character_match

SETS = {  # name: (language, born-digital)
    "en_born_digital": ("en", True),
    "en_scanned": ("en", False),
    "zh_born_digital": ("zh", True),
    "zh_scanned": ("zh", False),
}


def read_set(root: Path, language: str, born_digital: bool, pages: int) -> dict:
    """OCR ``pages`` generated pages of one set; their character match and pages/s."""
    synthetic.generate(
        root, pages, language=language, seed=11, split_val=0.0, style="document", pdf=born_digital
    )
    jobs = [
        PageJob(image, root / "read" / f"{image.stem}.json")
        for image in (root / "images").glob("*.png")
    ]
    with stopwatch() as elapsed:
        summary = run_ocr_jobs(jobs, root / "failed.txt")
    if summary.failed:
        raise RuntimeError(f"{root}: pages not read: {summary.failed}")
    total = CharacterMatch()
    for job in jobs:
        truth = read_ocr_json(root / "OCR" / job.target.name)
        total = total + character_match(truth, read_ocr_json(job.target))
    return {
        "character_recall": round(total.recall, 4),
        "character_precision": round(total.precision, 4),
        "characters": total.truth,
        "pages_per_s": round(pages / elapsed.seconds, 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=8, help="pages per set")
    parser.add_argument("--out", default="benchmarks/results/ocr_quality.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (language, born_digital) in SETS.items():
            results[name] = read_set(Path(scratch) / name, language, born_digital, args.pages)
            print(name, results[name], flush=True)
    workers, threads = default_layout()
    summary = {
        "benchmark": f"default OCR (rapidocr, {workers} workers x {threads} threads) against the "
        f"known text of {args.pages} synthetic document pages per set",
        "device": f"cpu ({available_cores()} cores)",
        **{
            f"{name}_{key}": value
            for name, result in results.items()
            for key, value in result.items()
        },
        "targets": {"zh_born_digital_character_recall": ">= 0.95"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
