# Two commands for users: `make lab` and `make test`. Everything else is for maintainers.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Which lock `make setup` installs: learner (requirements/learner.txt) or dev (requirements/dev.txt).
SETUP ?= learner
# The resolver of `make lock`: the dev install's uv, else uv on PATH, else one installed into build/uvtool.
UV ?= $(shell test -x $(VENV)/bin/uv && echo $(VENV)/bin/uv || command -v uv 2>/dev/null || echo build/uvtool/bin/uv)
LOCK_PYTHON := 3.11
COMPILE = $(UV) pip compile --universal --python-version $(LOCK_PYTHON) --quiet
# Jupyter refuses to run as root (containers, CI) unless told; harmless otherwise.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup setup-dev lab test lint format student notebook sync book bench bench-quick bench-gpu checkpoint clean-build lock

setup:
	@SETUP=$(SETUP) bash scripts/setup_env.sh

# The maintainer install: the learner lock plus pytest, ruff, playwright, nbval and the optional integrations.
setup-dev:
	@SETUP=dev bash scripts/setup_env.sh

lab: setup
	$(PY) -m jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

test: setup-dev
	$(PY) -m ruff check ssd_tutorial tests benchmarks scripts notebooks
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup-dev
	$(PY) -m ruff check ssd_tutorial tests benchmarks scripts notebooks

format: setup-dev
	$(PY) -m ruff format ssd_tutorial tests benchmarks scripts

# Notebooks are jupytext pairs (NN_name.ipynb + NN_name.py). After editing either side:
#   make notebook NB=03_heads   re-executes it and refreshes its committed outputs (NB unset: all of them)
#   make sync                   brings every .py / .ipynb pair back in step without executing
notebook: setup-dev
	$(PY) scripts/notebooks.py run $(NB)

sync: setup
	$(PY) scripts/notebooks.py sync

# The book: the committed notebooks (never re-executed) as a static site, with an API reference, in build/book/html.
# Sphinx + myst-nb + sphinx-book-theme (maintainer install) and npm (ipywidgets' HTML manager, MathJax) build it.
book: setup-dev
	$(PY) scripts/build_book.py

# Student copies of the notebooks: solutions replaced by NotImplementedError("Exercise: ..."), in build/student/.
student: setup
	$(PY) scripts/make_student.py --out build/student

bench: setup-dev
	$(PY) -m benchmarks.run

bench-quick: setup-dev
	$(PY) -m benchmarks.run --quick

# On a CUDA machine: CUDA tests, then SSD300/SSD512 at batch 32 (and 64) with AMP; figures in build/gpu/RESULTS.md.
bench-gpu: setup-dev
	PYTHON=$(PY) bash benchmarks/gpu.sh build/gpu

checkpoint: setup
	$(PY) -m ssd_tutorial train --preset tiny_shapes --seed 0 --epochs 12 --num-train 6400 --out runs/tiny_shapes_release
	$(PY) scripts/export_checkpoint.py runs/tiny_shapes_release/best.pt ssd_tutorial/pretrained/tiny_shapes.pt

clean-build:
	rm -rf build

# Regenerate both locks (needs the package registry) and environment.yml from the learner lock.
# uv keeps the versions already in a lock unless an input changed (add --upgrade to COMPILE to move them).
lock: $(UV)
	$(COMPILE) pyproject.toml --extra notebooks requirements/learner.in -o requirements/learner.txt
	$(COMPILE) pyproject.toml --extra dev requirements/dev.in -o requirements/dev.txt
	python3 scripts/make_environment.py

environment.yml: requirements/learner.txt scripts/make_environment.py
	python3 scripts/make_environment.py

build/uvtool/bin/uv:
	python3 -m venv build/uvtool
	build/uvtool/bin/python -m pip install --quiet uv
