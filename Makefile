# Two commands set everything up: `make demo` runs the main job offline, `make test` runs the suite.
# Both create .venv on first use and are quick once it is there (pip runs again only when
# pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TOPIC  ?= How vector databases enable semantic search
AUDIENCE ?= senior software engineers

.PHONY: demo test lab notebooks bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "mas needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "Python's venv module is missing: sudo apt-get install python3-venv (Debian/Ubuntu)"; exit 1; }
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mas run "$(TOPIC)" --audience "$(AUDIENCE)"

test: $(STAMP)
	MAS_OFFLINE=1 $(BIN)/python -m pytest -q

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Re-execute every notebook offline and save its outputs in place (what nbval compares against).
# One notebook: make notebooks NB=notebooks/03_orchestrator.ipynb
notebooks: $(STAMP)
	$(BIN)/python tools/refresh_notebooks.py $(or $(NB),notebooks/*.ipynb)

# Every bench runs; the target fails at the end if one missed its target (each prints which).
bench: $(STAMP)
	@status=0; for f in bench/bench_*.py; do echo "== $$f"; MAS_OFFLINE=1 $(BIN)/python $$f || status=1; done; exit $$status

clean:
	rm -rf $(VENV) build *.egg-info data reports
