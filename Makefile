# Two commands on a fresh machine:  make demo  (the nano pipeline)  and  make test  (the test suite).
# Both create the virtual environment in .venv if it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# make test: the unit tests and doctests on 2 pytest-xdist workers, one thread each (tests/conftest.py),
# then the notebook pipelines (`slow`) in one process at the machine's default thread count, the count
# their asserted figures were measured at (the nano base model's pretraining is another draw at 1 thread).
# TEST_WORKERS=0 runs the unit tests in one process too.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

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
	$(PY) -m pytest $(XDIST) -m "not slow"; fast=$$?; $(PY) -m pytest -m slow; slow=$$?; exit $$((fast | slow))

test-fast: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not slow"

lab: $(STAMP)
	$(PY) -m visionr1 lab

clean-outputs:  # everything but outputs/README.md
	find outputs -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
