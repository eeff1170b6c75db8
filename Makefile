# The course's tasks. `make lab` to learn, `make test` to check everything CI checks.
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider
NBVAL  := --nbval-current-env --nbval-cell-timeout=300
# Jupyter refuses to run as root unless told; containers and CI often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

export JUPYTER_PLATFORM_DIRS := 1

.PHONY: setup lab test test-quick test-unit test-solutions test-notebooks lint notebooks solutions bench preflight check catch-up progress

# Most of a test's time is spent waiting (a server starting, a stream paced by its sleeps), not
# computing, so tests and notebooks run in parallel pytest workers (pytest-xdist). A module's
# tests go to one worker, so its stack starts once (`loadgroup`: tests/conftest.py groups them,
# except bench smokes and stage checks, which share nothing and go one by one), slowest kind
# first; a notebook's cells run in one kernel (`loadfile`). `make test` runs lint, the tests and
# both notebook groups at the same time, each group's output shown when it ends: the notebooks
# fill the tests' waits. WORKERS=1 runs everything in one process, in order, as before.
WORKERS ?= 4
NB_WORKERS ?= 2
XDIST = $(if $(filter 1,$(WORKERS)),,-n $(WORKERS) --dist loadgroup --no-loadscope-reorder)
NB_XDIST = $(if $(filter 1,$(WORKERS)),,-n $(NB_WORKERS) --dist loadfile)
# make 3.81 (macOS's) has no --output-sync: there the groups' lines interleave.
OUTPUT_SYNC = $(if $(filter output-sync,$(.FEATURES)),--output-sync=target)
TOGETHER = $(if $(filter 1,$(WORKERS)),,-j 4 $(OUTPUT_SYNC))

setup:  ## the virtualenv, the pinned packages, nginx and redis-server
	@tools/setup.sh

lab: setup  ## set up, then open the course in JupyterLab
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --ServerApp.default_url=/lab/tree/notebooks/00_setup.ipynb

test:  ## set up, then run every check CI runs
	@tools/setup.sh chromium eslint
	$(MAKE) --no-print-directory $(TOGETHER) lint test-unit test-solutions test-notebooks

test-quick:  ## the edit-test loop: lint and the tests without browsers, bench runs and stage checks
	@tools/setup.sh eslint
	$(VENV)/bin/ruff check .
	$(PYTEST) $(XDIST) -q -m "not browser and not bench and not stage" tests

# The pages' JavaScript: eslint.config.mjs, run by the virtualenv's Node.js (tools/setup.sh eslint).
ESLINT := node_modules/eslint/bin/eslint.js

lint:  ## ruff, eslint, mypy over server/, and learner copies in step with solutions/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@test -x $(VENV)/bin/node -a -f $(ESLINT) || { echo "Node.js or eslint is missing: run tools/setup.sh eslint (make test does)"; exit 1; }
	$(VENV)/bin/node $(ESLINT) --max-warnings 0 .
	$(VENV)/bin/mypy
	$(PY) tools/make_learner.py --check

# Branch coverage of server/, servers started as subprocesses included (pyproject.toml).
COVERAGE_FLOOR := 90

test-unit:  ## unit, end-to-end and browser tests of server/, with branch coverage
	$(PYTEST) $(XDIST) --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR) tests
	$(PY) -m coverage report --include=server/sse.py --fail-under=100

test-solutions:  ## the solved notebooks, outputs compared with the committed ones
	$(PYTEST) $(NB_XDIST) $(NBVAL) --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg solutions

test-notebooks:  ## the learner copies, no exercise done, run for errors
	$(PYTEST) $(NB_XDIST) $(NBVAL) --nbval-lax notebooks

notebooks:  ## regenerate the learner copies from solutions/
	$(PY) tools/make_learner.py

solutions:  ## re-execute the solved notebooks in place (then review the diff)
	$(PY) tools/run_solutions.py $(NB)

preflight:  ## before a workshop, on the hub image: the environment, the hub path, two learners at once
	$(PY) -m server.course.doctor
	$(PYTEST) tests/test_jupyterhub_proxy.py -q

# The build-it stages: your chat in notebooks/mychat, checked on real servers (lessons 04-11).
PROJECT ?= notebooks/mychat

check:  ## check a stage of your chat: make check STAGE=1 [PROJECT=solutions/mychat]
	@test -n "$(STAGE)" || { echo "which stage? make check STAGE=1"; exit 2; }
	$(PY) -m server.course.stages $(STAGE) --project $(PROJECT)

catch-up:  ## fill the stages before STAGE from the reference (your files are backed up first)
	@test -n "$(STAGE)" || { echo "catch up to which stage? make catch-up STAGE=3"; exit 2; }
	$(PY) -m server.course.project catch-up $(STAGE) --project $(PROJECT)

progress:  ## for an instructor: learners x stages passed, e.g. PROJECTS='/home/*/sse-course/notebooks/mychat'
	$(PY) -m server.course.progress $(or $(PROJECTS),$(PROJECT))

bench:
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
