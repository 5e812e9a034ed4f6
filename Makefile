# Hamroh: `make run` to try it, `make test` to check everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
CATALOGUES := $(wildcard locales/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGUES:.po=.mo)

.PHONY: install run test lint typecheck catalogues extract clean

install: $(STAMP) $(COMPILED)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

locales/%/LC_MESSAGES/messages.mo: locales/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile --domain messages --input-file $< --output-file $@

run: install
	$(BIN)/hamroh db upgrade
	$(BIN)/hamroh demo
	$(BIN)/hamroh serve

lint: install
	$(BIN)/ruff check bot api tests bench migrations
	$(BIN)/ruff format --check bot api tests bench migrations
	$(BIN)/mypy

typecheck: lint

test: lint
	$(BIN)/hamroh flows check
	$(BIN)/pytest -q -n 3  # three workers: many tests wait on a database or a subprocess

# Content editors: refresh messages.pot from the flow files and merge new msgids into each catalogue.
extract: install
	$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output -o locales/messages.pot .
	for lang in tg ru en; do $(BIN)/pybabel update -i locales/messages.pot -d locales -l $$lang --no-fuzzy-matching; done

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
	find locales -name '*.mo' -delete
