"""Drive JupyterLab in headless Chromium for tests/test_browser.py: start a server, open a notebook, run it, read it.
(:func:`jupyter_lab`, the start-and-wait of a server, serves tests/test_lab.py too.)

Chromium is Debian's ``/usr/bin/chromium`` (installed by ``.ci/run``; Playwright downloads no browser here) and
is driven with the ``playwright`` package. The server serves a temporary folder, listens on 127.0.0.1 only and
requires a random token; its settings (no news pop-up, every cell rendered) live in a temporary folder too, so
the user's JupyterLab settings are neither read nor changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from notebook_harness import ci_parameters, kernel_environ, parameters_cells

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
START_TIMEOUT = 60.0
# Lab settings for the test server: no "fetch news?" notification over the page, every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook tab on show
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
ERROR_TEXT = re.compile(r"Traceback|^\w*(Error|Exception)\b", re.MULTILINE)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, token: str | None) -> Any:
    """GET ``url`` (a Jupyter server REST endpoint) with ``token``, parsed from JSON."""
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def jupyter_lab(command: list[str], *, cwd: Path, env: dict[str, str], log: Path, base: str, token: str,
                timeout_s: float = START_TIMEOUT) -> Iterator[subprocess.Popen]:  # fmt: skip
    """Run ``command`` (a ``jupyter lab`` answering at ``base`` with ``token``), output to ``log``; wait until
    ``base/api/status`` answers and yield the process; stop it on exit. Raises RuntimeError (with the log's
    tail) when the server exits or does not answer within ``timeout_s`` seconds."""

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    with open(log, "w") as log_file:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{tail()}")
                try:
                    get_json(f"{base}/api/status", token)
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"jupyter lab did not answer in {timeout_s} s:\n{tail()}") from None
                    time.sleep(0.3)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


def in_ci() -> bool:
    """True on CI (environment variable CI set to true/1/yes), where a missing browser is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def with_ci_parameters(src: Path, dst: Path) -> Path:
    """Copy notebook ``src`` to ``dst`` with its CI parameters appended to the ``parameters`` cell (the values
    papermill injects in notebook_harness.nbval_copy), so a browser run stays short."""
    nb = nbformat.read(str(src), as_version=4)
    overrides = ci_parameters(nb)
    if overrides:
        (index,) = parameters_cells(nb)
        cell = nb.cells[index]
        lines = [f"{name} = {value!r}" for name, value in overrides.items()]
        cell.source = cell.source.rstrip() + "\n# CI parameters (tests/browser_helpers.py)\n" + "\n".join(lines)
    nbformat.write(nb, str(dst))
    return dst


@dataclass
class LabServer:
    base: str
    token: str
    root: Path
    log: Path

    def url(self, notebook: str) -> str:
        """The notebook in a workspace of its own, so no tab of an earlier page is restored beside it."""
        workspace = re.sub(r"[^A-Za-z0-9_-]", "_", Path(notebook).stem)
        return f"{self.base}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"

    def api(self, path: str) -> Any:
        return get_json(f"{self.base}/api/{path}", self.token)


@contextlib.contextmanager
def lab_server(root: Path, work: Path) -> Iterator[LabServer]:
    """``jupyter lab`` serving ``root`` on a free loopback port with a random token; stopped on exit.

    Kernels are the .venv's ``python3`` (notebook_harness.kernel_environ); config, runtime, settings and
    workspaces live under ``work``.
    """
    settings = work / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
               f"--ServerApp.root_dir={root}"]  # fmt: skip
    env = dict(kernel_environ(), JUPYTER_RUNTIME_DIR=str(work / "runtime"), JUPYTER_CONFIG_DIR=str(work / "config"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"))  # fmt: skip
    server = LabServer(f"http://127.0.0.1:{port}", token, root, work / "lab.log")
    with jupyter_lab(command, cwd=root, env=env, log=server.log, base=server.base, token=token):
        yield server


def shut_down_kernels(server: LabServer) -> None:
    """Stop every kernel of the server (a finished notebook's kernel would only take memory)."""
    for kernel in server.api("kernels"):
        request = urllib.request.Request(f"{server.base}/api/kernels/{kernel['id']}", method="DELETE",
                                         headers={"Authorization": f"token {server.token}"})  # fmt: skip
        with contextlib.suppress(urllib.error.URLError):
            urllib.request.urlopen(request, timeout=10).close()


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, through Playwright (no Playwright browser download)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def open_notebook(page: Any, server: LabServer, name: str, timeout_s: float = 60.0, *, wait: bool = True) -> None:
    """Open ``name`` in JupyterLab; with ``wait``, also :func:`wait_for_notebook` (without, return as soon as the
    server answers, so several pages load side by side)."""
    page.goto(server.url(name), timeout=timeout_s * 1000, wait_until="load" if wait else "commit")
    if wait:
        wait_for_notebook(page, server, name, timeout_s)


def wait_for_notebook(page: Any, server: LabServer, name: str, timeout_s: float = 60.0) -> None:
    """Wait until the opened notebook shows its cells and its kernel is idle."""
    page.locator(f"{PANEL} .jp-Cell").first.wait_for(timeout=timeout_s * 1000)
    wait_for_kernel(server, name, timeout_s)


def _kernel_states(server: LabServer, name: str) -> list[str]:
    states = []
    for session in server.api("sessions"):
        if session.get("path", "").endswith(name) and session.get("kernel"):
            states.append(session["kernel"].get("execution_state", ""))
    return states


def wait_for_kernel(server: LabServer, name: str, timeout_s: float) -> None:
    """Wait until the notebook's kernel exists and reports ``idle`` (REST API)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = _kernel_states(server, name)
        if states and all(s == "idle" for s in states):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the kernel of {name} is not idle after {timeout_s} s (states {states})")
        time.sleep(0.3)


def click_menu(page: Any, menu: str, item: str) -> None:
    """Click ``item`` in the main menu ``menu`` (``"Run"`` → ``"Run All Cells"``)."""
    page.locator("#jp-MainMenu .lm-MenuBar-item", has=page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(
        rf"^{re.escape(menu)}$"))).click()  # fmt: skip
    entry = page.locator(".lm-Menu-item", has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(
        rf"^{re.escape(item)}$")))  # fmt: skip
    entry.first.click()


def input_prompts(page: Any) -> list[str]:
    """The text of every code cell's input prompt of the current notebook, e.g. ``"[3]:"``, ``"[*]:"``, ``"[ ]:"``."""
    return [" ".join(t.split()) for t in page.locator(f"{PANEL} .jp-CodeCell .jp-InputPrompt").all_inner_texts()]


def start_run_all(page: Any) -> None:
    """Run > Run All Cells in the notebook on show (returns at once)."""
    click_menu(page, "Run", "Run All Cells")


def wait_until_done(page: Any, server: LabServer, name: str, timeout_s: float) -> list[str]:
    """Wait until no cell of ``name`` is queued or running and its kernel is idle; return the input prompts
    (``"[n]:"`` for each cell that ran)."""
    page.bring_to_front()
    deadline = time.monotonic() + timeout_s
    idle_since = None
    while True:
        prompts = input_prompts(page)
        busy = any("*" in p for p in prompts) or any(s != "idle" for s in _kernel_states(server, name))
        now = time.monotonic()
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since > 1.0:  # idle for a second: the queue is empty, not between two cells
            return prompts
        if now > deadline:
            raise TimeoutError(f"{name} still running after {timeout_s} s; prompts {prompts}")
        time.sleep(0.25)


def run_all_and_wait(page: Any, server: LabServer, name: str, timeout_s: float) -> list[str]:
    """Run > Run All Cells, then :func:`wait_until_done`."""
    start_run_all(page)
    return wait_until_done(page, server, name, timeout_s)


def error_outputs(page: Any) -> list[str]:
    """Text of every output of the open notebook that shows an error (a traceback or ``SomeError: …``)."""
    texts = page.locator(f"{PANEL} {STDERR_OUTPUT}").all_inner_texts()
    return [t for t in texts if ERROR_TEXT.search(t)]


def table_rows(locator: Any) -> list[list[str]]:
    """Cell texts of each body row of the HTML table at ``locator``."""
    rows = []
    for row in locator.locator("tbody tr").all():
        rows.append([c.strip() for c in row.locator("td, th").all_inner_texts()])
    return rows


def slider_handle(widget: Any, label: str) -> Any:
    """The draggable handle of the ipywidgets slider described ``label`` inside ``widget``."""
    slider = widget.locator(".widget-slider", has=widget.page.locator(".widget-label", has_text=re.compile(
        rf"^{re.escape(label)}$")))  # fmt: skip
    return slider.locator(".noUi-handle").first


def slider_readout(widget: Any, label: str) -> str:
    slider = widget.locator(".widget-slider", has=widget.page.locator(".widget-label", has_text=re.compile(
        rf"^{re.escape(label)}$")))  # fmt: skip
    return slider.locator(".widget-readout").first.inner_text().strip()


def press_on_slider(widget: Any, label: str, key: str = "ArrowRight") -> None:
    """Focus the slider's handle and press ``key`` (continuous_update=False sliders fire on the key's change)."""
    handle = slider_handle(widget, label)
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press(key)


def wait_until_changed(read: Any, before: Any, timeout_s: float, what: str) -> Any:
    """Poll ``read()`` until it gives a non-empty value other than ``before``; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = read()
        if now != before and now:  # not the empty moment between clear_output and the new display
            return now
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not change within {timeout_s} s")
        time.sleep(0.2)


# In-page sampling of an output area's height while a widget updates: a ResizeObserver catches every change of
# size, a 5 ms timer catches the moments in between (an Output cleared and refilled collapses for 140-170 ms).
_START_SAMPLING = """(selector) => {
    const widget = document.querySelector(selector);
    const area = widget && widget.closest('.jp-Cell').querySelector('.jp-Cell-outputArea');
    if (!area) return false;
    const samples = [];
    const record = () => samples.push(area.getBoundingClientRect().height);
    const observer = new ResizeObserver(record);
    observer.observe(area);
    const timer = setInterval(record, 5);
    window.__ssdHeights = {samples, stop: () => { clearInterval(timer); observer.disconnect(); }};
    record();
    return true;
}"""
_STOP_SAMPLING = """() => { const s = window.__ssdHeights; s.stop(); delete window.__ssdHeights; return s.samples; }"""


def start_height_sampling(page: Any, selector: str) -> None:
    """Start recording the height of the output area of the cell whose widget matches ``selector``."""
    if not page.evaluate(_START_SAMPLING, selector):
        raise AssertionError(f"no widget {selector} inside a notebook cell's output area")


def stop_height_sampling(page: Any) -> list[float]:
    """Stop the recording of :func:`start_height_sampling`; return the heights seen (CSS pixels)."""
    return page.evaluate(_STOP_SAMPLING)


def blank_selects(page: Any) -> list[str]:
    """The description of every dropdown/select in the notebook's outputs that shows nothing (no option
    selected, or an option with an empty label)."""
    return page.evaluate("""() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) '
        + '.jp-OutputArea select')].filter(s => s.selectedIndex < 0 || !s.options[s.selectedIndex].text.trim())
        .map(s => (s.closest('.widget-inline-hbox, .widget-select') || s).innerText.trim() || '(no label)')""")


def picture_geometry(page: Any, selector: str) -> dict[str, float]:
    """For the first image inside ``selector``: its PNG's pixel width (``natural``) and the width it is drawn at
    (``shown``); the height of the cell's whole output (controls, figure, table) and of the notebook's visible area
    (``visible``)."""
    return page.evaluate("""(selector) => {
        const widget = document.querySelector(selector);
        const img = widget.querySelector('img');
        const area = widget.closest('.jp-Cell').querySelector('.jp-Cell-outputArea');
        const panel = widget.closest('.jp-WindowedPanel-outer, .jp-Notebook');
        return {natural: img.naturalWidth, shown: img.getBoundingClientRect().width,
                height: area.getBoundingClientRect().height, visible: panel.getBoundingClientRect().height};
    }""", selector)  # fmt: skip
