"""Write environment.yml (conda / Binder) from the learner lock: `python scripts/make_environment.py`.

conda provides only Python (the version the lock was resolved for) and pip; pip then installs the learner lock
itself and the project. conda-forge's names and builds differ from PyPI's (pytorch for torch, its own CUDA
packages), so listing conda packages would install versions nobody tested; `-r requirements/learner.txt` installs
exactly the pins `make setup` installs. `make lock` runs this script; tests/test_environment.py checks the file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK = "requirements/learner.txt"
HEADER = """\
# conda / Binder environment:  conda env create -f environment.yml && conda activate ssd_tutorial
# Generated from {lock} by scripts/make_environment.py (`make lock`); do not edit by hand.
# conda gives Python and pip only; pip installs the learner lock (the exact versions `make setup` installs and
# the tests run) and the project. conda-forge's own torch build ("pytorch") would be a version nobody tested.
"""


def lock_python(lock_text: str) -> str:
    """The Python version the lock was resolved for (``--python-version X.Y`` in uv's header)."""
    match = re.search(r"--python-version[ =](\d+\.\d+)", lock_text)
    if match is None:
        raise ValueError(f"{LOCK} has no '--python-version X.Y' in its header; regenerate it with `make lock`")
    return match.group(1)


def environment_yml(lock_text: str) -> str:
    """The text of environment.yml for a learner lock's text."""
    return HEADER.format(lock=LOCK) + (
        "name: ssd_tutorial\n"
        "channels:\n"
        "  - conda-forge\n"
        "dependencies:\n"
        f"  - python={lock_python(lock_text)}\n"
        "  - pip\n"
        "  - pip:\n"
        f"      - -r {LOCK}\n"
        "      - -e .\n"
    )


def main() -> int:
    text = environment_yml((REPO_ROOT / LOCK).read_text())
    (REPO_ROOT / "environment.yml").write_text(text)
    print(f"wrote environment.yml from {LOCK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
