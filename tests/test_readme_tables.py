"""README's benchmark tables are generated from benchmarks/results/*.json, never typed by hand."""

from conftest import ROOT, import_script

run_all = import_script("benchmarks/run_all.py")


def test_readme_benchmark_table_is_the_result_files():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(run_all.START, 1)[1].split(run_all.END, 1)[0].strip()
    assert block == run_all.table(), "run: python benchmarks/run_all.py --tabulate"
    assert (ROOT / "benchmarks" / "results" / "summary.md").read_text().strip() == block


def test_readme_precision_table_is_the_result_file():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(run_all.PRECISION_START, 1)[1].split(run_all.PRECISION_END, 1)[0]
    assert block.strip() == run_all.precision_table(), "run: benchmarks/run_all.py --tabulate"
