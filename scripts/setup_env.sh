#!/usr/bin/env bash
# Create .venv if it is missing, install a lock and the project (editable), and register the Jupyter kernel.
#   SETUP=learner (default, `make setup` / `make lab`): requirements/learner.txt
#   SETUP=dev     (`make test`, CI):                    requirements/dev.txt (learner + test tools + integrations)
#   CPU=1: on Linux, torch and torchvision from PyTorch's CPU index and the lock without its CUDA wheels
#          (nvidia-*, cuda-*, triton); remembered in .venv/.setup-cpu for later runs.
# Never deletes anything: a broken .venv is reported, with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
SETUP=${SETUP:-learner}
PYTHON=${PYTHON:-}
# The Python the locks were resolved and tested with (uv pip compile --python-version in the Makefile).
TESTED=3.11

case "$SETUP" in
    learner|dev) ;;
    *) echo "ERROR: SETUP must be 'learner' or 'dev', got '$SETUP'." >&2; exit 1 ;;
esac
LOCK=requirements/$SETUP.txt
STAMP=$VENV/.setup-$SETUP.stamp
CPU_INDEX=https://download.pytorch.org/whl/cpu

runs_311_or_newer() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    # An explicit PYTHON first, then the tested version, then newer ones.
    for candidate in "$PYTHON" "python$TESTED" python3.12 python3.13 python3.14 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 && runs_311_or_newer "$candidate"; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

if [ ! -e "$VENV" ]; then
    if ! py=$(find_python); then
        found=$(python3 --version 2>&1 || echo "no python3 on PATH")
        echo "ERROR: ssd_tutorial needs Python 3.11 or newer; found: $found." >&2
        echo "Install Python $TESTED (e.g. 'apt-get install python3.11 python3.11-venv' or pyenv)," >&2
        echo "or point to one with 'make setup PYTHON=/path/to/python3.11'." >&2
        exit 1
    fi
    version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ "$version" != "$TESTED" ]; then
        echo "WARNING: using Python $version ($py): the locks were tested with Python $TESTED." >&2
        echo "         If an install fails, install python$TESTED or pass PYTHON=/path/to/python$TESTED." >&2
    fi
    echo "Creating $VENV with $py ($("$py" --version 2>&1))"
    if ! "$py" -m venv "$VENV"; then
        echo "ERROR: '$py -m venv $VENV' failed; on Debian/Ubuntu install the venv module (apt-get install python3-venv)." >&2
        exit 1
    fi
fi

if ! runs_311_or_newer "$VENV/bin/python"; then
    echo "ERROR: $VENV exists but $VENV/bin/python does not run Python 3.11+ (broken or made with an old Python)." >&2
    echo "Nothing was deleted. Move it aside and run the command again:  mv $VENV $VENV.broken && make setup" >&2
    exit 1
fi

up_to_date() {  # $1: a stamp file, newer than the lock and pyproject.toml
    [ -f "$1" ] && [ "$1" -nt "$LOCK" ] && [ "$1" -nt pyproject.toml ]
}
# The dev lock holds every learner pin (tests/test_environment.py checks it), so a dev install covers learner.
if { up_to_date "$STAMP" || { [ "$SETUP" = learner ] && up_to_date "$VENV/.setup-dev.stamp"; }; } \
    && "$VENV/bin/python" -c 'import ssd_tutorial, torch, torchvision' >/dev/null 2>&1; then
    echo "$VENV is up to date for $LOCK (delete $STAMP to force a reinstall)."
    exit 0
fi

echo "Installing $LOCK into $VENV (Python $("$VENV/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'))"
"$VENV/bin/python" -m pip install --upgrade --quiet pip
[ -f "$VENV/.setup-cpu" ] && CPU=${CPU:-1}
if [ "${CPU:-0}" = 1 ]; then
    # The lock's torch==X also accepts the CPU build X+cpu; its CUDA wheels are left out.
    torch_pins=$(grep -E '^(torch|torchvision)==' "$LOCK" | sed 's/ *;.*//')
    echo "CPU=1: $(echo $torch_pins) from $CPU_INDEX, then $LOCK without nvidia-*, cuda-*, triton"
    "$VENV/bin/python" -m pip install --no-deps --index-url "$CPU_INDEX" $torch_pins
    grep -vE '^(nvidia-|cuda-|triton==)' "$LOCK" > "$VENV/.setup-cpu-lock.txt"
    "$VENV/bin/python" -m pip install -r "$VENV/.setup-cpu-lock.txt"
    touch "$VENV/.setup-cpu"
else
    "$VENV/bin/python" -m pip install -r "$LOCK"
    rm -f "$VENV/.setup-cpu" "$VENV/.setup-cpu-lock.txt"
fi
"$VENV/bin/python" -m pip install --no-deps --no-build-isolation -e .
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ssd_tutorial)" >/dev/null
touch "$STAMP"
echo "Setup done: $VENV ($("$VENV/bin/python" --version)) with $LOCK"
