# sacmap — two commands do all set-up: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
# The CPU build of torch; a plain `pip install torch` on Linux pulls a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
DEMO_SPEC ?= inputs/campaigns/demo.yaml
DEMO_OUT  ?= demo-out

.PHONY: demo test lint app app-test bench clean venv

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first (CPU wheel), unless some torch is already there.
$(VENV)/.torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -e ".[test]"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/sacmap run $(DEMO_SPEC) -o $(DEMO_OUT)
	@echo "Report: $(DEMO_OUT)/report.html"

test: $(VENV)/.installed-test
	$(VENV)/bin/pytest

app: $(VENV)/.installed
	$(PIP) install -q -e ".[app]"
	$(VENV)/bin/sacmap app

# Browser test of the web app (needs Debian's chromium; CI runs it inside `make test`).
app-test: $(VENV)/.installed-test
	$(VENV)/bin/pytest tests/app -m browser

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
