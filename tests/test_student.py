"""The classroom kit: `make student` (scripts/make_student.py) and what a student meets in the exercises.

- strip_solutions replaces each ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block by one
  ``raise NotImplementedError("Exercise: …")`` line, indented like the markers, keeping the code around it;
- every notebook with exercises, as a student gets it, stops with that message at its FIRST exercise cell and
  nowhere before (executed at CI parameters, only until the first error; the teacher's version runs in
  test_notebooks.py);
- every registered exercise answers a wrong answer of any type with a message, never an exception.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from notebook_harness import BEGIN_SOLUTION, REPO_ROOT, ci_parameters, execute, notebook_paths, read

from ssd_tutorial import exercises

_spec = importlib.util.spec_from_file_location("make_student", REPO_ROOT / "scripts" / "make_student.py")
make_student = importlib.util.module_from_spec(_spec)
sys.modules["make_student"] = make_student
_spec.loader.exec_module(make_student)

WITH_EXERCISES = [p for p in notebook_paths() if BEGIN_SOLUTION in p.read_text()]
IDS = [p.name for p in WITH_EXERCISES]


def _questions(name: str) -> str | None:
    return {"01_demo": "How many anchors? Give a number.", "01_other": None}.get(name)


def _raise_message(line: str) -> str:
    """The message of a ``raise NotImplementedError("…")`` line (parsed, so quoting is checked too)."""
    node = ast.parse(line.strip()).body[0]
    assert isinstance(node, ast.Raise) and node.exc.func.id == "NotImplementedError", line
    return ast.literal_eval(node.exc.args[0])


# --- strip_solutions on hand-written cells ---------------------------------------------------------------------


def test_top_level_solution_becomes_one_raise_and_keeps_the_check():
    source = ("# NBVAL_CHECK_OUTPUT\nx = 1\n### BEGIN SOLUTION\ntmp = 3\ntotal = tmp * 2\n### END SOLUTION\n"
              'exercises.check("01_demo", total)')  # fmt: skip
    student, messages = make_student.strip_solutions(source, _questions)
    lines = student.splitlines()
    assert lines[:2] == ["# NBVAL_CHECK_OUTPUT", "x = 1"] and lines[3] == 'exercises.check("01_demo", total)'
    assert len(lines) == 4 and BEGIN_SOLUTION not in student and "tmp" not in student
    message = _raise_message(lines[2])
    assert messages == [message]
    # what to write (the name the check reads, not the helper), the question's first sentence, how to get a hint
    assert message == "Exercise: compute total — How many anchors? (hint: exercises.hint('01_demo'))"


def test_solution_inside_a_function_keeps_def_indentation_and_code_after():
    source = ("def f(k, cfg=None):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = k + 1\n    return y\n"
              "    ### END SOLUTION\n\n\nexercises.check('01_other', f)")  # fmt: skip
    student, (message,) = make_student.strip_solutions(source, _questions)
    lines = student.splitlines()
    assert lines[:2] == ["def f(k, cfg=None):", "    '''doc'''"]
    assert lines[2].startswith("    raise NotImplementedError(") and _raise_message(lines[2]) == message
    assert lines[3:] == ["", "", "exercises.check('01_other', f)"]
    assert message == "Exercise: write the body of f() (hint: exercises.hint('01_other'))"  # no question: none shown
    ast.parse(student)
    namespace: dict = {}
    exec(compile(student.replace("exercises.check('01_other', f)", ""), "<cell>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="^Exercise: write the body of f"):
        namespace["f"](1)


def test_nested_blocks_in_a_method_and_two_blocks_in_one_cell():
    source = ("class A:\n    def g(self):\n        if True:\n            ### BEGIN SOLUTION\n            return 1\n"
              "            ### END SOLUTION\n### BEGIN SOLUTION\na, b = 1, 2\n### END SOLUTION\n"
              "check('01_demo', (a, b))")  # fmt: skip
    student, messages = make_student.strip_solutions(source, lambda name: None)
    assert len(messages) == 2
    assert messages[0].startswith("Exercise: write the body of g()")
    assert messages[1].startswith("Exercise: compute a, b")
    assert student.splitlines()[3].startswith("            raise NotImplementedError(")
    ast.parse(student)


def test_quotes_and_unicode_in_the_question_stay_valid_python():
    question = 'What is "s\'_k" = √(s_k·s_k+1)?\nSecond sentence.'
    student, (message,) = make_student.strip_solutions("### BEGIN SOLUTION\nv = 1\n### END SOLUTION\n"
                                                       "check('01_demo', v)", lambda name: question)  # fmt: skip
    assert _raise_message(student.splitlines()[0]) == message
    assert 'What is "s\'_k" = √(s_k·s_k+1)?' in message and "Second" not in message


def test_no_solution_is_unchanged_and_bad_markers_are_refused():
    source = "x = 1\n# ### BEGIN SOLUTION is only a marker on a line of its own\nprint(x)"
    assert make_student.strip_solutions(source) == (source, [])
    for broken, needle in [("### BEGIN SOLUTION\nx = 1", "without ### END"), ("### END SOLUTION", "without ### BEGIN"),
                           ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested")]:  # fmt: skip
        with pytest.raises(ValueError, match=needle):
            make_student.strip_solutions(broken)


def test_short_question_takes_the_first_sentence_and_caps_length():
    assert make_student.short_question("Write f(x) -> int: the count. Then more.") == "Write f(x) -> int: the count."
    assert make_student.short_question(None) == ""
    long = make_student.short_question("word " * 100)
    assert len(long) == make_student.MAX_QUESTION_CHARS and long.endswith("…")


def test_student_notebook_clears_only_solution_cells_and_leaves_the_teacher_copy_alone():
    nb = new_notebook(cells=[new_markdown_cell("# t"), new_code_cell("x = 1", execution_count=1),
                             new_code_cell("### BEGIN SOLUTION\ny = 2\n### END SOLUTION\ncheck('01_demo', y)",
                                           execution_count=2),
                             new_code_cell("print(3)", execution_count=3)])  # fmt: skip
    for cell in nb.cells[1:]:
        cell.outputs = [new_output("stream", name="stdout", text="teacher\n")]
    student, cells = make_student.student_notebook(nb, _questions)
    assert cells == [2]
    assert student.cells[2].outputs == [] and student.cells[2].execution_count is None
    assert [c.execution_count for c in student.cells[1::2]] == [1, 3]
    assert all(c.outputs[0]["text"] == "teacher\n" for c in student.cells[1::2])
    assert student.cells[0] == nb.cells[0]
    assert BEGIN_SOLUTION in nb.cells[2].source and nb.cells[2].outputs, "the teacher's notebook was changed"


def test_command_line_writes_every_notebook(tmp_path, capsys):
    assert make_student.main(["--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert written == [p.name for p in notebook_paths()]
    out = capsys.readouterr().out
    for path in WITH_EXERCISES:
        assert path.name in out
        assert BEGIN_SOLUTION not in (tmp_path / path.name).read_text()
    bad = tmp_path / "bad"
    bad.mkdir()
    nb = new_notebook(cells=[new_code_cell("### BEGIN SOLUTION\nx = 1")])
    nbformat.write(nb, str(bad / "01_bad.ipynb"))
    assert make_student.main(["--out", str(tmp_path / "out"), str(bad / "01_bad.ipynb")]) == 1
    assert "01_bad.ipynb" in capsys.readouterr().err


def test_makefile_has_a_student_target():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "--no-print-directory", "-n", "student"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=30, check=True)  # fmt: skip
    commands = [shlex.split(line) for line in done.stdout.splitlines() if "make_student.py" in line]
    assert commands and "build/student" in " ".join(commands[-1]), done.stdout


# --- the real notebooks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=IDS)
def test_every_solution_cell_becomes_a_clear_exercise(path, tmp_path):
    nb = read(path)
    student, cells = make_student.student_notebook(nb)
    number = path.name[:2]
    assert cells, f"{path.name} has {BEGIN_SOLUTION} but no exercise cell came out"
    for index in cells:
        source = student.cells[index].source
        names = make_student.exercise_names_in(nb.cells[index].source)
        assert names, f"{path.name} cell {index}: an exercise cell must call exercises.check('{number}_…', answer)"
        for name in names:
            assert name.startswith(f"{number}_"), f"{path.name} cell {index} checks {name!r} of another notebook"
            assert exercises.get_exercise(name) is not None, f"{path.name} cell {index}: {name!r} is not registered"
        raises = [line for line in source.splitlines() if "raise NotImplementedError(" in line]
        assert raises and all(_raise_message(line).startswith("Exercise: ") for line in raises), source
        assert any(f"exercises.hint('{n}')" in _raise_message(line) for line in raises for n in names), source
        assert not student.cells[index].outputs and student.cells[index].execution_count is None


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=IDS)
def test_registered_exercises_appear_in_their_notebook(path):
    text = path.read_text()
    number = path.name[:2]
    missing = [n for n in exercises.exercise_names() if n.startswith(f"{number}_") and n not in text]
    assert missing == [], f"exercises registered for {path.name} but never checked in it: {missing}"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", WITH_EXERCISES, ids=IDS)
def test_student_notebook_stops_at_its_first_exercise(path, tmp_path):
    from papermill.exceptions import PapermillExecutionError

    teacher = read(path)
    student, cells = make_student.student_notebook(teacher)
    first = cells[0]
    del student.cells[first + 1:]  # it must stop at `first`: nothing after it is needed
    source = tmp_path / path.name
    nbformat.write(student, str(source))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(PapermillExecutionError) as stopped:
        execute(source, out_dir, parameters=ci_parameters(teacher))
    assert stopped.value.ename == "NotImplementedError", stopped.value
    assert stopped.value.evalue.startswith("Exercise: "), stopped.value.evalue

    executed = read(out_dir / path.name)
    errored = [c.get("id") for c in executed.cells if c.cell_type == "code"
               and any(o.output_type == "error" for o in c.get("outputs", []))]  # fmt: skip
    assert errored == [teacher.cells[first].get("id")], (
        f"{path.name}: expected the only error in cell {first} (the first exercise), got errors in cells {errored}")
    # the student sees the message, not the checker's internals: no frame of ssd_tutorial/exercises in the traceback
    (error,) = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))
    assert "checker(answer)" not in traceback and "nb" + path.name[:2] + ".py" not in traceback, traceback


# --- wrong answers get a message, not a traceback -----------------------------------------------------------------


def _raises(*args, **kwargs):
    raise RuntimeError("the student's code raised")


WRONG_ANSWERS = {
    "None": None,
    "text": "no idea",
    "negative number": -1,
    "empty list": [],
    "tensor of the wrong shape": torch.zeros(2, 3, 5),
    "function returning None": lambda *args, **kwargs: None,
    "function that raises": _raises,
    "function taking no argument": lambda: 0,
    "object": object(),
}


@pytest.mark.parametrize("name", exercises.exercise_names())
def test_every_exercise_has_question_hint_and_solution(name, capsys):
    exercise = exercises.get_exercise(name)
    assert exercise.question.strip() and exercise.hint and exercise.solution
    exercises.hint(name)
    exercises.solution(name)
    out = capsys.readouterr().out
    assert exercise.hint in out and exercise.solution in out


@pytest.mark.parametrize("name", exercises.exercise_names())
def test_wrong_answers_of_any_type_get_a_message(name, capsys):
    for label, answer in WRONG_ANSWERS.items():
        assert exercises.check(name, answer) is False, f"{name} accepted {label}"
        out = capsys.readouterr().out
        first = out.strip().splitlines()[0] if out.strip() else ""
        prefix = f"❌ {name}: not yet. "
        assert first.startswith(prefix) and len(first) > len(prefix) + 10, (label, out)  # a message, not just "no"
        assert f"hint({name!r})" in out and "Traceback" not in out, (label, out)


def _function_exercises() -> list[str]:
    """Exercises whose solution, in its notebook, is the body of a function (the answer is that function)."""
    names = []
    for path in WITH_EXERCISES:
        for cell in read(path).cells:
            if cell.cell_type == "code" and BEGIN_SOLUTION in cell.source:
                _, messages = make_student.strip_solutions(cell.source)
                if any(m.startswith("Exercise: write the body of") for m in messages):
                    names += make_student.exercise_names_in(cell.source)
    return names


@pytest.mark.parametrize("name", _function_exercises())
def test_an_unwritten_exercise_stops_with_its_own_message_not_the_checkers_frames(name, capsys):
    """The checkers report a learner's function that raises as a wrong answer; the placeholder of a student
    notebook must instead stop "Run All" at this cell, with its own message."""

    def unwritten(*args, **kwargs):
        raise NotImplementedError("Exercise: write the body of unwritten()")

    with pytest.raises(NotImplementedError, match=r"^Exercise: write the body of unwritten\(\)$") as stopped:
        exercises.check(name, unwritten)
    assert stopped.value.__cause__ is None and stopped.value.__suppress_context__
    assert capsys.readouterr().out == ""  # no "not yet" line before the stop


# --- README "For teachers" stays in step with the notebooks and exercises -------------------------------------------


def _teachers_section() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    assert "## For teachers" in text, "README.md has no 'For teachers' section"
    return text.split("## For teachers", 1)[1]


def test_readme_for_teachers_lists_every_notebook_and_exercise():
    section = _teachers_section()
    missing_notebooks = [p.stem for p in notebook_paths() if f"`{p.stem}`" not in section]
    missing_exercises = [n for n in exercises.exercise_names() if f"`{n}`" not in section]
    assert missing_notebooks == [], f"README 'For teachers' does not describe notebooks {missing_notebooks}"
    assert missing_exercises == [], f"README 'For teachers' does not list exercises {missing_exercises}"
    assert "make student" in section and "mybinder.org/v2/gh/" in section and "colab.research.google.com" in section
