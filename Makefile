# tfrec: `make run` runs the main job, `make test` runs the test suite. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
CONFIG ?= pipelines/movielens_100k.yaml
PYTEST_ARGS ?=

.PHONY: setup run test lint clean

setup: $(STAMP)

# The beam extra too, so the Beam driver's test never skips.
# Reinstall only when the package definition changes, so a second `make setup` is a no-op.
$(STAMP): setup.py
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "tfrec needs Python 3.11, found " + sys.version' 
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,beam]'
	touch $(STAMP)

run: setup
	$(VENV)/bin/tfrec run $(CONFIG)

test: setup lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The type checker (mypy.ini) and the linter (ruff.toml), both configured in the repository;
# `make test` (and so .ci/run) runs them before the tests.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf runs build *.egg-info
