"""Text of born-digital pages: the PDF text layer vs the default OCR, in one run: pages/s and
word recall of each against the known text.

    python benchmarks/text_sources.py [--pages 12] [--ocr-pages 4] [--dpi 150] [--out F]

Pages come from the synthetic generator, each written as a PNG, its exact text and a
born-digital PDF. Both sides go through ``run_ocr_jobs`` as ``tools/ocr_pages.py`` runs them,
on the pages rendered from the PDFs at ``--dpi``: once taking the text layer, once OCR'ing every
page (``text_layer=False``) with the default engine and layout (worker start-up included).
Recall: the fraction of the known words (lower-cased, longer than 3 letters) found in the
page's text.
"""

import argparse
import json
import tempfile
from pathlib import Path

from _harness import stopwatch, write_result

from ditod.data.synthetic import generate as generate_synthetic_pages
from ditod.pages.ocr_runner import PageJob, available_cores, default_layout, run_ocr_jobs
from ditod.pages.page_inputs import collect_pages


def words(lines) -> list[str]:
    return [w for line in lines for w in line.lower().split() if len(w) > 3]


def recall(found_lines, truth_lines) -> tuple[int, int]:
    found = set(words(found_lines))
    truth = words(truth_lines)
    return sum(word in found for word in truth), len(truth)


def pages_per_second(jobs, out: Path, text_layer: bool) -> tuple[float, dict]:
    with stopwatch() as elapsed:
        summary = run_ocr_jobs(jobs, out / "failed.txt", text_layer=text_layer)
    if summary.failed or (summary.text_layer if text_layer else summary.done) != len(jobs):
        raise RuntimeError(f"not every page read: {summary}")
    texts = {job.pdf.stem: json.loads(job.target.read_text())["words"] for job in jobs}
    return len(jobs) / elapsed.seconds, texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=12, help="pages read from the text layer")
    parser.add_argument("--ocr-pages", type=int, default=4, help="of them, pages OCR'd")
    parser.add_argument("--dpi", type=float, default=150)
    parser.add_argument("--out", default="benchmarks/results/text_sources.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        generate_synthetic_pages(root, pages=args.pages, seed=7, split_val=0.0, pdf=True)
        truth = {p.stem: json.loads(p.read_text())["words"] for p in (root / "OCR").glob("*.json")}
        pages, failed = collect_pages([root / "pdf"], root / "rendered", dpi=args.dpi)
        assert not failed, failed

        def jobs(folder, count):
            return [
                PageJob(p.image, root / folder / f"{p.name}.json", p.pdf, p.page_index)
                for p in pages[:count]
            ]

        pdf_rate, pdf_text = pages_per_second(jobs("layer", len(pages)), root / "layer", True)
        ocr_rate, ocr_text = pages_per_second(jobs("ocr", args.ocr_pages), root / "ocr", False)

    pdf_found = [recall(pdf_text[n], truth[n]) for n in pdf_text]
    ocr_found = [recall(ocr_text[n], truth[n]) for n in ocr_text]
    workers, threads = default_layout()
    summary = {
        "benchmark": f"page text: PDF text layer ({len(pdf_text)} pages) vs default OCR "
        f"(rapidocr, {workers} workers x {threads} threads, {len(ocr_text)} pages), synthetic "
        f"born-digital pages at {args.dpi:g} dpi, through run_ocr_jobs",
        "device": f"cpu ({available_cores()} cores)",
        "pdf_pages_per_s": pdf_rate,
        "ocr_pages_per_s": ocr_rate,
        "speedup": pdf_rate / ocr_rate,
        "pdf_word_recall": sum(f for f, _ in pdf_found) / sum(t for _, t in pdf_found),
        "ocr_word_recall": sum(f for f, _ in ocr_found) / sum(t for _, t in ocr_found),
        "targets": {"speedup": ">= 100", "pdf_word_recall": ">= 0.99"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
