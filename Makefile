# Two commands for users: `make lab` and `make test`. Everything else is for maintainers.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Jupyter refuses to run as root (containers, CI) unless told; harmless otherwise.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup lab test lint format student notebook sync book bench bench-quick bench-gpu checkpoint clean-build

setup:
	@bash scripts/setup_env.sh

lab: setup
	$(PY) -m jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

test: setup
	$(PY) -m ruff check ssd_tutorial tests benchmarks scripts notebooks
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check ssd_tutorial tests benchmarks scripts notebooks

format: setup
	$(PY) -m ruff format ssd_tutorial tests benchmarks scripts

# Notebooks are jupytext pairs (NN_name.ipynb + NN_name.py). After editing either side:
#   make notebook NB=03_heads   re-executes it and refreshes its committed outputs (NB unset: all of them)
#   make sync                   brings every .py / .ipynb pair back in step without executing
notebook: setup
	$(PY) scripts/notebooks.py run $(NB)

sync: setup
	$(PY) scripts/notebooks.py sync

# The book: the committed notebooks (never re-executed) as a static site, with an API reference, in build/book/html.
# Sphinx + myst-nb + sphinx-book-theme (maintainer install) and npm (ipywidgets' HTML manager, MathJax) build it.
book: setup
	$(PY) scripts/build_book.py

# Student copies of the notebooks: solutions replaced by NotImplementedError("Exercise: ..."), in build/student/.
student: setup
	$(PY) scripts/make_student.py --out build/student

bench: setup
	$(PY) -m benchmarks.run

bench-quick: setup
	$(PY) -m benchmarks.run --quick

# On a CUDA machine: CUDA tests, then SSD300/SSD512 at batch 32 (and 64) with AMP; figures in build/gpu/RESULTS.md.
bench-gpu: setup
	PYTHON=$(PY) bash benchmarks/gpu.sh build/gpu

checkpoint: setup
	$(PY) -m ssd_tutorial train --preset tiny_shapes --seed 0 --epochs 12 --num-train 6400 --out runs/tiny_shapes_release
	$(PY) scripts/export_checkpoint.py runs/tiny_shapes_release/best.pt data/checkpoints/tiny_shapes.pt

clean-build:
	rm -rf build
