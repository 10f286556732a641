"""Every notebooks/*.ipynb is linted, executed at CI parameters, and compared with its committed outputs.

Notebooks are discovered with a glob (a new notebook is tested without touching this file); each test is
parametrized by file name so a failure names the notebook.

Conventions every notebook follows (checked by ``notebook_harness.lint_notebook``):
- the file name matches ``^\\d\\d_[a-z0-9_]+\\.ipynb$`` (``01_constants.ipynb``);
- exactly one code cell is tagged ``parameters`` (papermill); it assigns every knob that makes a run long;
- small values for CI live in the notebook metadata ``metadata["ssd_tutorial"]["ci_parameters"]`` (a dict,
  possibly empty); every key there is assigned in the parameters cell;
- the notebook is committed executed top to bottom on a fresh kernel named ``python3``: code cells have
  execution counts 1..n without gaps, outputs are committed, and no output is an error;
- ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines are balanced in each cell;
- cells whose committed output must be reproduced exactly carry the cell tag ``nbval-check-output`` (nbval runs in
  ``--nbval-lax`` mode, which compares only those, so keep their text deterministic and independent of the CI
  parameters); widget and timing cells are tagged ``nbval-ignore-output``.

Each notebook runs once: papermill injects its CI parameters, and nbval executes it top to bottom on a fresh
kernel, failing on a cell that raises and on a ``nbval-check-output`` cell whose output changed. That run has the
working directory notebooks/ and the kernel of the running interpreter (the ``python3`` kernel that ``make setup``
registers in .venv), with a per-cell timeout (``SSD_NOTEBOOK_CELL_TIMEOUT`` seconds, default 300). papermill's own
execution (``notebook_harness.execute``) is tested on small notebooks below and runs every student notebook
(tests/test_student.py).
"""

from __future__ import annotations

import re
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from notebook_harness import (
    NOTEBOOK_DIR,
    ci_parameters,
    execute,
    kernel_prefix,
    lint_notebook,
    notebook_paths,
    read,
    run_nbval,
)

NOTEBOOKS = notebook_paths()
IDS = [path.name for path in NOTEBOOKS]


def test_notebooks_are_discovered():
    assert NOTEBOOK_DIR.is_dir()
    assert any(path.name == "01_constants.ipynb" for path in NOTEBOOKS), IDS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_lint(path):
    assert lint_notebook(path) == []


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_executes_at_ci_parameters_and_reproduces_committed_outputs(path, tmp_path):
    # One run serves both checks (see the module docstring): no cell raises at the CI parameters, and the
    # committed outputs of the checked cells come out again. run_nbval raises with nbval's report otherwise.
    done = run_nbval(path, tmp_path, timeout=1800)
    code_cells = sum(cell.cell_type == "code" for cell in read(path).cells)
    ran = 1 + code_cells + bool(ci_parameters(read(path)))  # the chdir cell, the notebook's, papermill's injected
    assert re.search(rf"^{ran} passed\b", done.stdout, re.MULTILINE), done.stdout


def test_kernel_python3_is_this_interpreter():
    assert kernel_prefix() == sys.prefix, "the 'python3' kernel is not the .venv's one; run `make setup`"


# --- the harness itself fails when it should -------------------------------------------------------------------


def _write(path, cells, ci=None, executed=True):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["ssd_tutorial"] = {"ci_parameters": {} if ci is None else ci}
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and executed:
            count += 1
            cell.execution_count = count
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ok\n")]
    nbformat.write(nb, str(path))
    return path


# Prints how the kernel talks to its client: the harness starts kernels over IPC.
TRANSPORT_CELL = ("from ipykernel.connect import get_connection_info\n"
                  "print('transport', get_connection_info(unpack=True)['transport'])")  # fmt: skip


def _params(source="N = 100"):
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def test_lint_accepts_a_good_notebook(tmp_path):
    path = _write(tmp_path / "01_good.ipynb", [new_markdown_cell("# t"), _params("N = 100\nM: int = 2"),
                                               new_code_cell("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION")],
                  ci={"N": 2, "M": 1})  # fmt: skip
    assert lint_notebook(path) == []


def test_lint_catches_error_output_and_gap(tmp_path):
    path = _write(tmp_path / "01_bad.ipynb", [_params(), new_code_cell("1/0"), new_code_cell("x = 1")])
    nb = read(path)
    nb.cells[1].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                                  traceback=[])]  # fmt: skip
    nb.cells[2].execution_count = 4  # gap: 1, 2, 4
    nbformat.write(nb, str(path))
    problems = lint_notebook(path)
    assert any("error output" in p and "ZeroDivisionError" in p for p in problems), problems
    assert any("execution counts" in p and "[1, 2, 4]" in p for p in problems), problems


@pytest.mark.parametrize(
    "name, cells, ci, needle",
    [
        ("1_short.ipynb", None, None, "does not match"),
        ("01_no_params.ipynb", [new_code_cell("x = 1")], None, "exactly one cell tagged 'parameters'"),
        ("01_two_params.ipynb", [_params(), _params()], None, "found 2"),
        ("01_ci_key.ipynb", None, {"EPOCHS": 1}, "['EPOCHS'] are not assigned"),
        ("01_sol.ipynb", [_params(), new_code_cell("### BEGIN SOLUTION\nx = 1")], None, "without ### END"),
        ("01_sol2.ipynb", [_params(), new_code_cell("### END SOLUTION\nx = 1")], None, "without ### BEGIN"),
    ],
)
def test_lint_catches_convention_breaks(tmp_path, name, cells, ci, needle):
    path = _write(tmp_path / name, cells if cells is not None else [_params()], ci=ci)
    problems = lint_notebook(path)
    assert any(needle in p for p in problems), problems


def test_lint_catches_unexecuted_and_wrong_kernel(tmp_path):
    path = _write(tmp_path / "01_raw.ipynb", [_params(), new_code_cell("x = 1")], executed=False)
    nb = read(path)
    nb.metadata["kernelspec"]["name"] = "other"
    nbformat.write(nb, str(path))
    problems = lint_notebook(path)
    assert any("no outputs committed" in p for p in problems), problems
    assert any("execution counts" in p for p in problems), problems
    assert any("kernelspec name must be 'python3'" in p for p in problems), problems


@pytest.mark.notebook
def test_execute_fails_on_a_raising_cell_and_passes_ci_parameters(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    good = _write(tmp_path / "01_good.ipynb", [_params("N = 100"), new_code_cell("import os\nassert N == 3, N\n"
                                                                                 "print(os.getcwd())"),
                                               new_code_cell(TRANSPORT_CELL)])  # fmt: skip
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    executed = read(execute(good, out_dir, parameters={"N": 3}, cwd=tmp_path))
    assert executed.cells[-2].outputs[0]["text"].strip() == str(tmp_path)
    assert executed.cells[-1].outputs[0]["text"].strip() == "transport ipc"  # not TCP (see notebook_harness)

    bad = _write(tmp_path / "02_raises.ipynb", [_params(), new_code_cell("raise RuntimeError('boom')")])
    with pytest.raises(PapermillExecutionError, match="boom"):
        execute(bad, out_dir, cwd=tmp_path)


def test_sliced_poll_finds_a_reply_whose_wake_up_was_missed(monkeypatch):
    import asyncio
    from queue import Empty

    import notebook_harness
    from jupyter_client.channels import AsyncZMQSocketChannel

    waits, ready_at = [], [3]

    async def poll(self, timeout=None):  # the socket's own wait; the reply is seen from look number ready_at on
        waits.append(timeout)
        if len(waits) < ready_at[0]:
            await asyncio.sleep((timeout or 0) / 100)  # a missed wake-up: the wait ends empty
            raise Empty
        return {"msg_type": "execute_reply"}

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", poll)
    channel = object.__new__(notebook_harness.SlicedPollChannel)
    assert asyncio.run(channel.get_msg(timeout=300)) == {"msg_type": "execute_reply"}
    assert waits == [notebook_harness.POLL_SLICE_S] * 3  # three short looks, not one 300 s wait
    monkeypatch.setattr(notebook_harness, "POLL_SLICE_S", 0.05)
    waits.clear()
    assert asyncio.run(channel.get_msg(timeout=None)) == {"msg_type": "execute_reply"}  # None: slices, no end
    assert waits == [0.05] * 3
    waits.clear()
    ready_at[0] = 10**9  # no reply: a real timeout still ends in Empty, every look within it
    with pytest.raises(Empty):
        asyncio.run(channel.get_msg(timeout=0.2))
    assert len(waits) >= 4 and all(w <= 0.05 for w in waits), waits


@pytest.mark.notebook
def test_execute_fails_on_a_cell_past_its_timeout(tmp_path):
    from nbclient.exceptions import CellTimeoutError

    slow = _write(tmp_path / "01_slow.ipynb", [_params(), new_code_cell("import time\ntime.sleep(60)")])
    with pytest.raises(CellTimeoutError, match="after 2 seconds"):
        execute(slow, tmp_path, cell_timeout=2, cwd=tmp_path)


@pytest.mark.notebook
@pytest.mark.slow
def test_nbval_uses_ci_parameters_and_fails_on_changed_output_or_error(tmp_path):
    checked = {"tags": ["nbval-check-output"]}  # the cell tag the notebooks use (no comment in the code)
    cells = [_params("N = 100"), new_code_cell("print(N * 2)", metadata=checked),
             new_code_cell("print('stale')", metadata=checked), new_code_cell("print('not compared')"),
             new_code_cell(TRANSPORT_CELL, metadata=checked), new_code_cell("raise RuntimeError('boom')")]
    path = _write(tmp_path / "01_check.ipynb", cells, ci={"N": 3})
    nb = read(path)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="6\n")]  # right at CI's N = 3
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="fresh\n")]  # wrong
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="anything\n")]  # lax: ignored
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="transport ipc\n")]  # nbval's kernel
    nbformat.write(nb, str(path))  # the last cell raises; its committed output "ok" is not compared (lax)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(AssertionError, match="nbval failed on 01_check.ipynb") as failed:
        run_nbval(path, work, cwd=tmp_path, timeout=300)
    report = re.sub(r"\x1b\[[0-9;]*m", "", str(failed.value))  # no colours
    # chdir, parameters, papermill's injected parameters, N * 2, the unchecked and the transport cells pass
    assert "2 failed, 6 passed" in report, report
    assert "stale" in report and "fresh" in report
    assert "Cell execution caused an exception" in report and "RuntimeError: boom" in report
