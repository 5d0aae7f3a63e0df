# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3

.PHONY: install run test lint bench

install:
	$(PYTHON) -m pip install -q -e '.[dev]'

run:
	$(PYTHON) -m pip install -q -e .
	$(PYTHON) -m fastws --insecure  # the open demo; see docs/security.md before exposing it

test:
	bash scripts/test.sh

lint:
	$(PYTHON) -m ruff check fastws tests bench

bench:
	$(PYTHON) -m bench run
