"""Helpers that lint, execute (papermill) and compare (nbval) the tutorial notebooks.

The conventions they enforce are documented in tests/test_notebooks.py. Every function takes a path,
so the same code runs on notebooks/*.ipynb and on the small broken notebooks the tests build.

Kernels talk to their client over IPC (Unix sockets named after a fresh connection file), not TCP: with TCP
the client picks free ports, releases them and the kernel binds them later, a race that made kernels started
side by side on a loaded machine hang. nbclient's client polls its sockets in short slices
(:class:`SlicedPollChannel`), so a missed wake-up costs a second, not a cell timeout. scripts/notebooks.py uses the
same kernel managers.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager, KernelManager
from traitlets import Type

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "python3"
NAME_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
# Seconds one cell may run at CI parameters; SSD_NOTEBOOK_CELL_TIMEOUT overrides it.
CELL_TIMEOUT = int(os.environ.get("SSD_NOTEBOOK_CELL_TIMEOUT", "300"))
KERNEL_START_TIMEOUT = 60
POLL_SLICE_S = 1.0  # longest single wait on a kernel socket (SlicedPollChannel)


def notebook_paths() -> list[Path]:
    """Every notebooks/*.ipynb, sorted; discovered, never listed by hand."""
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def parameters_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells tagged ``parameters``."""
    return [i for i, cell in enumerate(nb.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]


def ci_parameters(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """``metadata["ssd_tutorial"]["ci_parameters"]`` (small values for CI), {} if absent."""
    return dict(nb.metadata.get("ssd_tutorial", {}).get("ci_parameters", {}))


def assigned_names(source: str) -> set[str]:
    """Names assigned at the top level of ``source`` (``x = 1``, ``x: int = 1``, ``a, b = 1, 2``)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []  # fmt: skip
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    names.add(sub.id)
    return names


def lint_notebook(path: Path) -> list[str]:
    """Problems with a committed notebook (empty list: none). See test_notebooks.py for the rules."""
    path = Path(path)
    problems: list[str] = []
    if not NAME_PATTERN.match(path.name):
        problems.append(f"file name {path.name!r} does not match {NAME_PATTERN.pattern}")
    nb = read(path)
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != KERNEL_NAME:
        problems.append(f"kernelspec name must be {KERNEL_NAME!r}, got {kernel!r}")

    params = parameters_cells(nb)
    if len(params) != 1:
        problems.append(f"expected exactly one cell tagged 'parameters', found {len(params)} (cells {params})")
    meta = nb.metadata.get("ssd_tutorial", {}).get("ci_parameters")
    if not isinstance(meta, dict):
        problems.append(f'metadata["ssd_tutorial"]["ci_parameters"] must be a dict, got {meta!r}')
    elif len(params) == 1:
        cell = nb.cells[params[0]]
        if cell.cell_type != "code":
            problems.append("the 'parameters' cell must be a code cell")
        else:
            try:
                missing = sorted(set(meta) - assigned_names(cell.source))
            except SyntaxError as error:
                problems.append(f"the 'parameters' cell is not valid Python: {error}")
            else:
                if missing:
                    problems.append(f"ci_parameters {missing} are not assigned in the 'parameters' cell")

    code_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    counts = [c.get("execution_count") for _, c in code_cells]
    if counts != list(range(1, len(code_cells) + 1)):
        problems.append(f"execution counts must be 1..{len(code_cells)} in order (run top to bottom on a fresh "
                        f"kernel), got {counts}")  # fmt: skip
    if not any(c.get("outputs") for _, c in code_cells):
        problems.append("no outputs committed: execute the notebook and commit it with its outputs")
    for i, cell in code_cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            problems.append(f"cell {i} is a papermill 'injected-parameters' cell: commit the source notebook")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {i} has an error output committed: {output.get('ename')}: "
                                f"{output.get('evalue')}")  # fmt: skip
            count = output.get("execution_count")
            if output.get("output_type") == "execute_result" and count != cell.get("execution_count"):
                problems.append(f"cell {i}: output execution_count {count} != cell's {cell.get('execution_count')}")

    for i, cell in enumerate(nb.cells):
        depth = 0
        for line in cell.source.splitlines():
            marker = line.strip()
            if marker == BEGIN_SOLUTION:
                depth += 1
                if depth > 1:
                    problems.append(f"cell {i}: nested {BEGIN_SOLUTION}")
            elif marker == END_SOLUTION:
                depth -= 1
                if depth < 0:
                    problems.append(f"cell {i}: {END_SOLUTION} without {BEGIN_SOLUTION}")
                    depth = 0
        if depth > 0:
            problems.append(f"cell {i}: {BEGIN_SOLUTION} without {END_SOLUTION}")
    return problems


def kernel_environ() -> dict[str, str]:
    """The environment for kernels: JUPYTER_PATH leads with this interpreter's prefix, so the kernel
    named ``python3`` is the one ``make setup`` registered in .venv (``ipykernel install --sys-prefix``)."""
    env = dict(os.environ)
    own = str(Path(sys.prefix) / "share" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (own, env.get("JUPYTER_PATH", "")) if p)
    env.pop("MPLBACKEND", None)  # notebooks use %matplotlib inline; Agg from CI would not hurt, but be explicit
    return env


def fresh_connection_file() -> str:
    """A new connection-file path in the system temporary folder. An IPC kernel's sockets are named after it
    (``<stem>-ipc-<n>``), so each kernel gets sockets of its own, by an absolute path that both the client and a
    kernel started in another working directory resolve alike, short enough for a Unix socket (< 108 bytes)."""
    return os.path.join(tempfile.gettempdir(), f"ssd-kernel-{uuid.uuid4().hex}.json")


class _IPCTransport:
    """Mixin for jupyter_client kernel managers: transport ``ipc`` and a fresh connection file, unless given."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault("connection_file", fresh_connection_file())
        super().__init__(**kwargs)


class IPCKernelManager(_IPCTransport, KernelManager):
    """jupyter_client's KernelManager over IPC (nbval's kernels, see :func:`run_nbval`)."""


class SlicedPollChannel(AsyncZMQSocketChannel):
    """An async channel whose ``get_msg(timeout)`` polls in slices of at most :data:`POLL_SLICE_S` seconds.

    nbclient waits for a cell's reply with one poll as long as the cell timeout. When the socket's wake-up is
    missed (nbclient issue 312, seen here with widget cells on a loaded machine), that poll only finds the
    waiting reply when it times out: the cell "takes" the full timeout (300 s) and then passes. A fresh poll
    looks at the socket first, so a missed wake-up now costs one slice.
    """

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE_S if deadline is None else min(POLL_SLICE_S, max(0.0, deadline - time.monotonic()))
            try:
                return await super().get_msg(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class SlicedPollKernelClient(AsyncKernelClient):
    """AsyncKernelClient whose channels are :class:`SlicedPollChannel` s."""

    shell_channel_class = Type(SlicedPollChannel)
    iopub_channel_class = Type(SlicedPollChannel)
    stdin_channel_class = Type(SlicedPollChannel)
    control_channel_class = Type(SlicedPollChannel)


class AsyncIPCKernelManager(_IPCTransport, AsyncKernelManager):
    """jupyter_client's AsyncKernelManager over IPC, with :class:`SlicedPollKernelClient` clients (nbclient's and
    papermill's ``kernel_manager_class``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("client_factory", SlicedPollKernelClient)
        super().__init__(**kwargs)


@contextlib.contextmanager
def replaced_environ(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` is exactly ``env`` inside the block (kernels inherit it), and restored after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def kernel_prefix(kernel_name: str = KERNEL_NAME) -> str:
    """sys.prefix of the interpreter that the kernel ``kernel_name`` starts (as papermill resolves it)."""
    from jupyter_client.kernelspec import KernelSpecManager

    with replaced_environ(kernel_environ()):
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    argv0 = sys.executable if spec.argv[0] in ("python", "python3", "{python}") else spec.argv[0]
    done = subprocess.run([argv0, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return done.stdout.strip()


def execute(path: Path, out_dir: Path, *, parameters: dict[str, Any] | None = None,
            cell_timeout: int = CELL_TIMEOUT, cwd: Path = NOTEBOOK_DIR) -> Path:  # fmt: skip
    """Execute ``path`` with papermill into ``out_dir`` (kernel python3, working directory ``cwd``).

    Raises papermill's PapermillExecutionError when a cell raises, and nbclient's timeout error when a
    cell runs longer than ``cell_timeout`` seconds. Returns the executed copy.
    """
    import papermill

    out = Path(out_dir) / Path(path).name
    with replaced_environ(kernel_environ()):
        papermill.execute_notebook(
            str(path), str(out), parameters=parameters or {}, kernel_name=KERNEL_NAME, cwd=str(cwd),
            execution_timeout=cell_timeout, start_timeout=KERNEL_START_TIMEOUT, progress_bar=False,
            kernel_manager_class=AsyncIPCKernelManager,
        )  # fmt: skip
    return out


def nbval_copy(path: Path, out_dir: Path, *, cwd: Path = NOTEBOOK_DIR) -> Path:
    """A copy of ``path`` for nbval, with its committed outputs: the CI parameters injected by papermill (a
    cell tagged ``injected-parameters`` after the ``parameters`` cell, as :func:`execute` runs it; prepared only,
    nothing runs here), and a first cell that moves the kernel to ``cwd`` (nbval starts kernels in the copy's
    folder)."""
    import papermill

    source = read(path)
    overrides, params = ci_parameters(source), parameters_cells(source)
    if overrides and len(params) != 1:
        raise ValueError(f"{Path(path).name}: ci_parameters need exactly one 'parameters' cell, found {len(params)}")
    out = Path(out_dir) / Path(path).name
    with replaced_environ(kernel_environ()):
        papermill.execute_notebook(str(path), str(out), parameters=overrides, kernel_name=KERNEL_NAME,
                                   prepare_only=True, progress_bar=False)  # fmt: skip
    nb = read(out)
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import os\nos.chdir({str(cwd)!r})"))
    nbformat.write(nb, str(out))
    return out


def run_nbval(path: Path, work_dir: Path, *, cell_timeout: int = CELL_TIMEOUT, cwd: Path = NOTEBOOK_DIR,
              timeout: float | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run ``pytest --nbval-lax`` on an :func:`nbval_copy` of ``path`` in a subprocess (the running
    interpreter's kernel, ``--nbval-current-env``, over IPC: this file run as a script is pytest with nbval's
    kernel manager swapped for :class:`IPCKernelManager`). nbval runs every cell top to bottom on one fresh
    kernel: a cell that raises fails, and so does an ``nbval-check-output`` cell whose output differs from the
    committed one. Raises AssertionError with pytest's output if anything failed."""
    copy = nbval_copy(path, work_dir, cwd=cwd)
    command = [
        sys.executable, str(Path(__file__).resolve()), "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
        "--nbval-cell-timeout", str(cell_timeout), "--nbval-kernel-startup-timeout", str(KERNEL_START_TIMEOUT),
        "-q", "--rootdir", str(work_dir), "-c", os.devnull, str(copy),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=work_dir, env=kernel_environ(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"nbval failed on {Path(path).name} (exit {done.returncode}):\n{done.stdout}\n"
                             f"{done.stderr}")  # fmt: skip
    return done


class _IPCKernelsForNbval:
    """pytest plugin: nbval builds a plain KernelManager itself; make it :class:`IPCKernelManager`."""

    @staticmethod
    def pytest_configure(config: Any) -> None:
        import nbval.kernel  # imported here, once pytest has loaded (and assertion-rewritten) nbval

        nbval.kernel.KernelManager = IPCKernelManager
        nbval.kernel.RunningKernel.execute_cell_input = _execute_with_history


def _execute_with_history(self: Any, cell_input: str, allow_stdin: Any = None) -> str:
    """nbval runs cells with ``store_history=False``, unlike JupyterLab and nbclient; IPython then ignores a
    trailing ``;`` (its quiet check reads the history), so ``exercises.check(...);`` would print ``True`` under
    nbval only. Run cells as a notebook does."""
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)


def _pytest_with_ipc_kernels(args: list[str]) -> int:
    """``pytest args`` with nbval's kernels started over IPC."""
    import pytest

    return int(pytest.main(args, plugins=[_IPCKernelsForNbval()]))


if __name__ == "__main__":  # run_nbval's subprocess
    raise SystemExit(_pytest_with_ipc_kernels(sys.argv[1:]))
