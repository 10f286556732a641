"""Every shell line of README.md's code blocks runs as written (in a scratch folder, with the .venv that
`make setup` leaves), except `make …` lines (tested by test_install.py and the suite itself) and lines marked
``# no-test`` (network, conda, git remotes). Trainings and evaluations get tiny parameters appended."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
# Appended to long commands (argparse keeps the last value of an option given twice).
SHORTER = {
    "train": " --epochs 1 --num-train 8 --num-val 4 --max-iters 2 --no-progress --device cpu",
    "evaluate": " --num-images 8 --device cpu",
    "detect": " --device cpu",
}
COMMAND = re.compile(r"(?:-m ssd_tutorial|ssd-tutorial)\s+(train|evaluate|detect)\b")


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) of each shell line in the ```bash / ```sh blocks; continuations joined."""
    lines, language, pending, start = [], None, "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(raw)
        if fence:
            language = None if language is not None else fence.group(2)
            continue
        if language not in SHELL_LANGUAGES:
            continue
        line = raw.strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line, pending = pending + line, ""
        if line and not line.startswith("#"):
            lines.append((start, line))
    return lines


def to_run(command: str) -> str | None:
    """The command as the test runs it, or None for one it leaves out."""
    if "# no-test" in command or re.match(r"make\b", command):
        return None
    match = COMMAND.search(command)
    if match:
        code, _, comment = command.partition("  #")
        command = code.rstrip() + SHORTER[match.group(1)]
    return command


def test_shell_lines_are_found_and_the_right_ones_left_out():
    text = """
```bash
make lab    # opens JupyterLab
python -m ssd_tutorial train --preset tiny_shapes \\
    --out runs/x
conda env create -f environment.yml   # no-test
# a comment
```

```python
print("not shell")
```
  ```bash
  .venv/bin/ssd-tutorial evaluate --checkpoint tiny_shapes  # shipped
  ```
"""
    lines = shell_lines(text)
    assert lines == [(3, "make lab    # opens JupyterLab"),
                     (4, "python -m ssd_tutorial train --preset tiny_shapes --out runs/x"),
                     (6, "conda env create -f environment.yml   # no-test"),
                     (14, ".venv/bin/ssd-tutorial evaluate --checkpoint tiny_shapes  # shipped")]  # fmt: skip
    runs = [to_run(line) for _, line in lines]
    assert runs[0] is None and runs[2] is None
    assert runs[1] == "python -m ssd_tutorial train --preset tiny_shapes --out runs/x" + SHORTER["train"]
    assert runs[3] == ".venv/bin/ssd-tutorial evaluate --checkpoint tiny_shapes" + SHORTER["evaluate"]


def test_readme_shows_the_commands_a_newcomer_needs():
    lines = [line for _, line in shell_lines(README.read_text())]
    for expected in ("make lab", "make test", "source .venv/bin/activate"):
        assert any(line.startswith(expected) for line in lines), expected
    for command in ("evaluate --checkpoint tiny_shapes", "detect --checkpoint tiny_shapes"):
        assert any(command in line for line in lines), command
    assert "circle, square and triangle" in README.read_text()


@pytest.mark.slow
def test_every_readme_shell_line_runs(tmp_path):
    venv = REPO_ROOT / ".venv"
    if not (venv / "bin" / "python").exists():
        pytest.skip("no .venv in the checkout: run `make setup` first")
    work = tmp_path / "work"
    work.mkdir()
    for name in (".venv", "data"):  # what README's lines read; everything they write lands in work/
        (work / name).symlink_to(REPO_ROOT / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
    env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(venv),
            "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg"}  # fmt: skip
    ran = 0
    for number, line in shell_lines(README.read_text()):
        command = to_run(line)
        if command is None:
            continue
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=work, env=env, capture_output=True,
                              text=True, timeout=900, stdin=subprocess.DEVNULL)  # fmt: skip
        ran += 1
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            pytest.fail(f"README.md line {number}: {line!r} exited {done.returncode}:\n{tail}")
    assert ran >= 6
    # what README's commands wrote is ignored by git in a checkout
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in work.iterdir() if p.name not in (".venv", "data"))
    assert written, "README's commands wrote nothing?"
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=60).stdout.split()  # fmt: skip
    assert sorted(ignored) == written, f"not in .gitignore: {sorted(set(written) - set(ignored))}"
