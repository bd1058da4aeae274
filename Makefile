# The set-up and the two everyday commands, for people. CI runs .ci/run (its own .ci-venv), not make.
#
#   make test    the test suite: python -m pytest -q (make test ARGS='-k space' passes pytest arguments)
#   make demo    the main job: tuner run-study --space default.yaml on the embedded demo (ARGS: more flags)
#
# Either one creates .venv with python3 -m venv and installs the project into it (editable, with the
# test extra) the first time, and again whenever pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
ARGS ?=
BIN := $(VENV)/bin
# Touched after a successful install: make compares it with pyproject.toml to know when to reinstall.
INSTALLED := $(VENV)/.smart-tuner-installed

.PHONY: test demo install

test: $(INSTALLED)
	$(BIN)/python -m pytest -q $(ARGS)

demo: $(INSTALLED)
	$(BIN)/tuner run-study --space default.yaml $(ARGS)

install: $(INSTALLED)

# A new environment gets a current pip first: the editable install of a pyproject-only project
# (PEP 660) needs pip 21.3 or later, newer than some Pythons bundle.
$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet --upgrade pip; }
	$(BIN)/python -m pip install -e '.[test]'
	touch $@
