# Two commands set everything up: `make demo` runs the main job offline, `make test` runs the suite.
# Both create the venv on first use and install only what they need, with the versions of
# constraints.txt (generated from uv.lock); pip runs again only when those files change.
# Another Python or venv: make test PYTHON=python3.13 VENV=.venv-3.13
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TOPIC  ?= How vector databases enable semantic search
AUDIENCE ?= senior software engineers

.PHONY: demo test lab notebooks live-check bench times lock doctor clean check-python

# The venv itself: a supported Python with its venv module (Debian and Ubuntu ship it apart).
$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "mas needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "Python's venv module is missing: sudo apt-get install python3-venv (Debian/Ubuntu)"; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

# Asked for another Python (make test PYTHON=python3.13) than the one that made the venv: say so.
check-python: | $(VENV)/.created
ifeq ($(origin PYTHON),command line)
	@[ "$$($(BIN)/python -c 'import sys; print(sys.version)')" = "$$($(PYTHON) -c 'import sys; print(sys.version)')" ] || \
		{ echo "$(VENV) was made with another Python than $(PYTHON): run make clean first, or give it a venv of its own (VENV=.venv-$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'))"; exit 1; }
endif

# One stamp per extra: the module alone (demo), the course (lab), the suite (test).
$(VENV)/.installed-%: pyproject.toml constraints.txt | $(VENV)/.created check-python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.$(if $(filter core,$*),,[$*])'
	touch $@

demo: check-python $(VENV)/.installed-core
	$(BIN)/mas run "$(TOPIC)" --audience "$(AUDIENCE)"

# One pytest worker a core (pytest-xdist); a file's tests stay together, so a notebook's cells run in order.
test: check-python $(VENV)/.installed-test
	MAS_OFFLINE=1 $(BIN)/python -m pytest -q -n auto --dist loadfile

lab: check-python $(VENV)/.installed-lab
	$(BIN)/jupyter lab notebooks/

doctor: $(VENV)/.installed-core
	$(BIN)/mas doctor

# Re-execute every notebook offline and save its outputs in place (what nbval compares against).
# One notebook: make notebooks NB=notebooks/03_orchestrator.ipynb
notebooks: $(VENV)/.installed-test
	$(BIN)/python tools/refresh_notebooks.py $(or $(NB),notebooks/*.ipynb)

# Live parity: every notebook executed with a (fake) key against `mas serve` on loopback, which the check starts
# itself (and a redis-server); fails on any cell error. Outputs are not written back. One: NB=notebooks/01_...
# SERVER=mas (`mas serve`) or SERVER=fakellm (a third-party mock, with the rules in tests/fakellm.yaml)
live-check: check-python $(VENV)/.installed-test
	$(BIN)/python tools/run_notebooks_live.py --server $(or $(SERVER),mas) $(NB)

# How long each notebook takes a learner (reading, running, an exercise): what the workshop agendas plan from.
times: $(VENV)/.installed-test
	$(BIN)/python tools/notebook_times.py $(NB)

# Every bench runs; the target fails at the end if one missed its target (each prints which).
bench: $(VENV)/.installed-test
	@status=0; for f in bench/bench_*.py; do echo "== $$f"; MAS_OFFLINE=1 $(BIN)/python $$f || status=1; done; exit $$status

# Maintainers: re-resolve uv.lock (every supported Python, Linux, macOS and Windows) against PyPI
# and regenerate constraints.txt from it. Upgrading is: make lock && make notebooks && make test.
lock: | $(VENV)/.created
	$(BIN)/python -m pip install --quiet 'uv>=0.13,<0.14'
	$(BIN)/uv lock --upgrade
	$(BIN)/uv export --frozen --format requirements-txt --all-extras --no-hashes --no-emit-project \
		--output-file constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info data reports
