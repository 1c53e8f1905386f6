# Two commands on a fresh machine:  make demo  (the nano pipeline)  and  make test  (the test suite).
# Both create the virtual environment in .venv if it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lab clean-outputs

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name visionr1 --display-name "Python 3 (visionr1)" >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m visionr1 run params/nano.yaml

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lab: $(STAMP)
	$(PY) -m visionr1 lab

clean-outputs:  # everything but outputs/README.md
	find outputs -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
