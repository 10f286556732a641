#!/usr/bin/env bash
# Create .venv if it is missing, install the pinned dependencies and the project (editable), and
# register the Jupyter kernel. Never deletes anything: a broken .venv is reported, with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP=$VENV/.setup-stamp
PYTHON=${PYTHON:-}

find_python() {
    for candidate in "$PYTHON" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

if [ ! -e "$VENV" ]; then
    if ! py=$(find_python); then
        found=$(python3 --version 2>&1 || echo "no python3 on PATH")
        echo "ERROR: ssd_tutorial needs Python 3.11 or newer; found: $found." >&2
        echo "Install Python 3.11+ (e.g. 'apt-get install python3.11 python3.11-venv' or pyenv)," >&2
        echo "or point to one with 'make setup PYTHON=/path/to/python3.11'." >&2
        exit 1
    fi
    echo "Creating $VENV with $py ($("$py" --version 2>&1))"
    if ! "$py" -m venv "$VENV"; then
        echo "ERROR: '$py -m venv $VENV' failed; on Debian/Ubuntu install the venv module (apt-get install python3-venv)." >&2
        exit 1
    fi
fi

if ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
    echo "ERROR: $VENV exists but $VENV/bin/python does not run Python 3.11+ (broken or made with an old Python)." >&2
    echo "Nothing was deleted. Move it aside and run the command again:  mv $VENV $VENV.broken && make setup" >&2
    exit 1
fi

if [ -f "$STAMP" ] && [ "$STAMP" -nt requirements.txt ] && [ "$STAMP" -nt pyproject.toml ] \
    && "$VENV/bin/python" -c 'import ssd_tutorial, torch, torchvision' >/dev/null 2>&1; then
    echo "$VENV is up to date (delete $STAMP to force a reinstall)."
    exit 0
fi

"$VENV/bin/python" -m pip install --upgrade --quiet pip
"$VENV/bin/python" -m pip install -r requirements.txt
"$VENV/bin/python" -m pip install --no-deps --no-build-isolation -e .
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ssd_tutorial)" >/dev/null
touch "$STAMP"
echo "Setup done: $VENV ($("$VENV/bin/python" --version))"
