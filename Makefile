# Two commands a newcomer needs: `make demo` and `make test`. Both create .venv and are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kaalwatch demo

test: $(STAMP)
	$(BIN)/ruff check kaalwatch review_app tests bench
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check kaalwatch review_app tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
