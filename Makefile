# The two commands a user needs on a fresh machine: `make test` and `make demo`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo demo-zh bench lint format clean

$(STAMP): setup.py scripts/install.sh scripts/patch_detectron2_setup.py
	VENV=$(VENV) scripts/install.sh

setup:
	VENV=$(VENV) scripts/install.sh

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) tools/demo.py --output-dir output/demo

# The same in Chinese, as a CDLA user runs it: labelme pages, cdla_to_coco, OCR, XLM-R tokens.
demo-zh: $(STAMP)
	$(PY) tools/demo.py --language zh --output-dir output/demo-zh

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) output .pytest_cache .ruff_cache *.egg-info
