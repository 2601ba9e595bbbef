# Two commands on a fresh machine: `make run` and `make test`. Both install into .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint typecheck format bench bench-scale bench-soak

$(BIN)/activate: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(BIN)/activate

install: $(BIN)/activate

run: install
	$(BIN)/python run.py

test: install lint typecheck
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The files are listed in pyproject.toml ([tool.mypy] files).
typecheck: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python bench/webhooks.py

# The tick over 10 k, 100 k and 1 M plans, and their charges end to end (minutes): bench/SCALE.md, bench/scale.png.
bench-scale: install
	$(BIN)/python bench/scale.py

# Signed webhooks at a fixed rate through the Procfile's processes for up to an hour, memory and backlog sampled:
# bench/SOAK.md, bench/soak.png.
bench-soak: install
	$(BIN)/python bench/soak.py
