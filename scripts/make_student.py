"""Write the student copies of the notebooks: every solution replaced by a NotImplementedError saying what to write.

    .venv/bin/python scripts/make_student.py [--out build/student] [notebooks/NN_name.ipynb ...]

(``make student`` runs it on every notebooks/*.ipynb.) In each code cell, the lines between ``### BEGIN SOLUTION``
and ``### END SOLUTION`` (markers included) become one line, indented like the markers::

    raise NotImplementedError("Exercise: write the body of anchors_at_level. How many anchors … (hint: …)")

The code before and after the markers stays, so a solution inside a function leaves the ``def`` line and the
``exercises.check(...)`` call in place. Cells that held a solution lose their outputs and execution counts
(the teacher's outputs would give the answer away); every other cell, markdown and output is kept as it is.
A notebook without exercises is copied unchanged, so the class gets the whole series.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
DEFAULT_OUT = REPO_ROOT / "build" / "student"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
MESSAGE_PREFIX = "Exercise: "
MAX_QUESTION_CHARS = 160

__all__ = [
    "BEGIN_SOLUTION",
    "END_SOLUTION",
    "MESSAGE_PREFIX",
    "exercise_names_in",
    "registered_question",
    "short_question",
    "strip_solutions",
    "student_notebook",
    "write_student_notebooks",
]

CHECK_CALL = re.compile(r"""\bcheck\(\s*(?:name\s*=\s*)?["'](\d\d_[A-Za-z0-9_]+)["']""")
QuestionLookup = Callable[[str], "str | None"]
DEF_LINE = re.compile(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(")


def exercise_names_in(source: str) -> list[str]:
    """Exercise names of the ``check("NN_what", …)`` calls in ``source``, in order of appearance."""
    return CHECK_CALL.findall(source)


def registered_question(name: str) -> str | None:
    """The question of exercise ``name`` from ``ssd_tutorial.exercises``, or None when it is not registered."""
    try:
        from ssd_tutorial import exercises
    except ImportError:  # the package is not installed: the message names only what to write
        return None
    exercise = exercises.get_exercise(name)
    return exercise.question if exercise is not None else None


def short_question(question: str | None) -> str:
    """The first sentence of ``question`` on one line, at most MAX_QUESTION_CHARS characters ('' for None)."""
    if not question:
        return ""
    text = " ".join(question.split())
    match = re.match(r"(.+?[.?!])(\s|$)", text)
    first = match.group(1) if match else text
    if len(first) > MAX_QUESTION_CHARS:
        first = first[: MAX_QUESTION_CHARS - 1].rstrip() + "…"
    return first


def _enclosing_def(lines: list[str], index: int, indent: int) -> str | None:
    """Name of the function whose body holds line ``index`` (indented by ``indent``), if any."""
    for line in reversed(lines[:index]):
        if not line.strip():
            continue
        own = len(line) - len(line.lstrip())
        if own < indent:
            match = DEF_LINE.match(line)
            if match is not None:
                return match.group(2)
            indent = own  # an `if`/`for`/`with` block: keep looking outwards
            if own == 0:
                return None
    return None


def _assigned(block: list[str]) -> list[str]:
    """Names assigned at the top level of the solution lines (in order, no repeats); [] if they do not parse."""
    try:
        tree = ast.parse(textwrap.dedent("\n".join(block)))
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign))
                   else [node] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else [])  # fmt: skip
        for target in targets:
            if isinstance(target, (ast.FunctionDef, ast.ClassDef)):
                found = [target.name]
            else:
                found = [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
            names += [n for n in found if n not in names]
    return names


def _message(name: str | None, function: str | None, assigned: list[str], question_for: QuestionLookup) -> str:
    if function is not None:
        task = f"write the body of {function}()"
    elif assigned:
        task = "compute " + ", ".join(assigned)
    else:
        task = "write the missing code"
    text = f"{MESSAGE_PREFIX}{task}"
    if name is not None:
        question = short_question(question_for(name))
        if question:
            text += f" — {question}"
        text += f" (hint: exercises.hint('{name}'))"
    return text


def strip_solutions(source: str, question_for: QuestionLookup = registered_question) -> tuple[str, list[str]]:
    """``source`` with each solution block replaced by ``raise NotImplementedError("Exercise: …")``.

    Returns ``(new_source, messages)``, one message per block (empty list: the cell holds no solution). The
    raise keeps the indentation of the ``### BEGIN SOLUTION`` line; the text says what to write (the body of the
    enclosing function, or the names the solution assigns) and, when the cell calls ``check("NN_what", …)``,
    the first sentence of that exercise's question and how to get a hint.

    Raises ValueError for unbalanced or nested markers.
    """
    lines = source.splitlines()
    names = exercise_names_in(source)
    out: list[str] = []
    messages: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        marker = line.strip()
        if marker == END_SOLUTION:
            raise ValueError(f"{END_SOLUTION} without {BEGIN_SOLUTION} at line {index + 1}")
        if marker != BEGIN_SOLUTION:
            out.append(line)
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != END_SOLUTION:
            if lines[end].strip() == BEGIN_SOLUTION:
                raise ValueError(f"nested {BEGIN_SOLUTION} at line {end + 1}")
            end += 1
        if end == len(lines):
            raise ValueError(f"{BEGIN_SOLUTION} at line {index + 1} without {END_SOLUTION}")
        indent = line[: len(line) - len(line.lstrip())]
        after = exercise_names_in("\n".join(lines[end:]))
        name = after[0] if after else (names[0] if names else None)
        assigned = _assigned(lines[index + 1:end])
        rest = "\n".join(lines[end + 1:])
        answers = [n for n in assigned if re.search(rf"\b{re.escape(n)}\b", rest)] or assigned
        text = _message(name, _enclosing_def(lines, index, len(indent)), answers, question_for)
        messages.append(text)
        out.append(f"{indent}raise NotImplementedError({json.dumps(text, ensure_ascii=False)})")
        index = end + 1
    return "\n".join(out), messages


def student_notebook(nb: nbformat.NotebookNode,
                     question_for: QuestionLookup = registered_question) -> tuple[nbformat.NotebookNode, list[int]]:
    """A copy of ``nb`` with every solution stripped (:func:`strip_solutions`); solution cells lose their
    outputs and execution counts. Returns ``(copy, indices of the exercise cells)``."""
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    exercise_cells: list[int] = []
    for i, cell in enumerate(copy.cells):
        if cell.cell_type != "code":
            continue
        source, messages = strip_solutions(cell.source, question_for)
        if messages:
            cell.source = source
            cell.outputs = []
            cell.execution_count = None
            exercise_cells.append(i)
    return copy, exercise_cells


def write_student_notebooks(paths: list[Path], out_dir: Path) -> dict[Path, list[int]]:
    """Write the student copy of each notebook in ``paths`` to ``out_dir`` (same file name).

    Returns {written path: indices of its exercise cells}.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[Path, list[int]] = {}
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        try:
            student, cells = student_notebook(nb)
        except ValueError as error:
            raise ValueError(f"{path.name}: {error}") from None
        target = out_dir / path.name
        nbformat.validate(student)
        nbformat.write(student, str(target))
        written[target] = cells
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to convert (default: notebooks/*.ipynb)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: build/student)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        print(f"no notebooks found in {NOTEBOOK_DIR}", file=sys.stderr)
        return 1
    try:
        written = write_student_notebooks(paths, args.out)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for target, cells in written.items():
        shown = target.relative_to(REPO_ROOT) if target.is_relative_to(REPO_ROOT) else target
        print(f"wrote {shown} ({len(cells)} exercise cell{'s' if len(cells) != 1 else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
