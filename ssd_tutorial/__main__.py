"""``python -m ssd_tutorial`` runs the command line (see ``cli.py``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
