"""The widgets work in a real browser: JupyterLab in headless Chromium runs 02 (and 07) and a slider redraws.

On both screens a learner uses (1366x768 and 1920x1080; each page starts on one and moves to the other), the figure
is shown at its PNG's size and fits with its controls and table in the visible notebook, the cell keeps its height
while the widget redraws (its height is sampled every 5 ms), and no dropdown shows blank.

Marker ``browser`` (``make test`` and CI run it). Needs Debian's ``chromium`` at /usr/bin/chromium and the
``playwright`` package: without them the test is skipped with the reason, except on CI (``CI=true``) where it
fails. A temporary copy of notebooks/ is served, with each notebook's CI parameters appended to its parameters
cell (a full run of 02 alone takes most of the 90 s budget). Screenshots go to a temporary folder that is
deleted when the test passes and kept (its path printed) when it fails or SSD_BROWSER_KEEP_SCREENSHOTS is set.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from browser_helpers import (
    CHROMIUM,
    blank_selects,
    error_outputs,
    in_ci,
    lab_server,
    launch_chromium,
    open_notebook,
    picture_geometry,
    press_on_slider,
    shut_down_kernels,
    slider_readout,
    start_height_sampling,
    start_run_all,
    stop_height_sampling,
    table_rows,
    wait_for_notebook,
    wait_until_changed,
    wait_until_done,
    with_ci_parameters,
)
from nbformat.v4 import new_code_cell, new_notebook
from notebook_harness import NOTEBOOK_DIR

from ssd_tutorial.config import SSD512_VOC  # no torch import: the test process stays light

pytestmark = pytest.mark.browser

NB02 = "02_anchor_tiling.ipynb"
NB07 = "07_evaluation_and_inference.ipynb"
EXPLORER, THRESHOLDS = ".ssd-anchor-explorer", ".ssd-threshold-widget"
RAISES = "zz_raises.ipynb"  # a notebook that fails on purpose: the error checks can fail
RUN_TIMEOUT_S = 60.0  # one notebook at CI parameters (≤ 20 s of compute on 2 cores, plus the kernel start)
REDRAW_TIMEOUT_S = 20.0
SMALL = {"width": 1366, "height": 768}  # the two screens a learner uses: each widget is checked on both
LARGE = {"width": 1920, "height": 1080}
VIEWPORTS = {RAISES: SMALL, NB02: SMALL, NB07: LARGE}  # each page starts on one and moves to the other


def _sync_playwright() -> Callable:
    """playwright.sync_api.sync_playwright, or skip (fail on CI) naming what is missing."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (Debian package `chromium`: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the Python package `playwright` (pip install playwright; no browser download needed)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if in_ci():
            pytest.fail(f"{message}; on CI (CI=true) it must run: install it in .ci/run")
        pytest.skip(message)
    return sync_playwright


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    sync_playwright = _sync_playwright()
    root = tmp_path_factory.mktemp("lab_root")
    for path in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        with_ci_parameters(path, root / path.name)
    _write_raising_notebook(root / RAISES)
    with lab_server(root, tmp_path_factory.mktemp("lab_work")) as server:
        yield server, sync_playwright


@pytest.fixture(scope="module")
def browser(lab):
    _, sync_playwright = lab
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@contextlib.contextmanager
def screenshots(page, name: str) -> Iterator[Callable[[str], Path]]:
    """``shot(label)`` saves a full-page PNG; the folder is removed on success and kept (path printed) on failure."""
    folder = Path(tempfile.mkdtemp(prefix=f"ssd_browser_{Path(name).stem}_"))
    count = 0

    def shot(label: str) -> Path:
        nonlocal count
        count += 1
        path = folder / f"{count:02d}_{label}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    try:
        yield shot
    except BaseException:
        with contextlib.suppress(Exception):
            shot("failure")
        print(f"\nbrowser screenshots of {name} kept in {folder}")
        raise
    if os.environ.get("SSD_BROWSER_KEEP_SCREENSHOTS"):
        print(f"\nbrowser screenshots of {name} in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def started(lab, browser):
    """One page per notebook under test, every one opened and started (Run > Run All Cells) before any test
    waits, so the kernels start and run side by side: that keeps the whole browser test within 90 s.

    Yields {notebook name: page}; 07 only once notebooks/07_evaluation_and_inference.ipynb exists.
    """
    server, _ = lab
    names = [RAISES, NB02] + ([NB07] if (server.root / NB07).exists() else [])
    contexts, pages = [], {}
    try:
        for name in names:
            contexts.append(browser.new_context(viewport=VIEWPORTS[name]))
            pages[name] = contexts[-1].new_page()
            open_notebook(pages[name], server, name, wait=False)
        for name, page in pages.items():
            wait_for_notebook(page, server, name, RUN_TIMEOUT_S)
            start_run_all(page)
        yield pages
    finally:
        for context in contexts:
            context.close()
        shut_down_kernels(server)


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_chromium_fails_on_ci_and_skips_elsewhere(monkeypatch, tmp_path, ci, outcome):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no-chromium"):
        _sync_playwright()


def _write_raising_notebook(path: Path) -> None:
    cells = [new_code_cell("print('before')"), new_code_cell("1 / 0"), new_code_cell("print('never runs')")]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def _ran_without_errors(page, server, name: str, shot: Callable[[str], Path]) -> None:
    """Wait for the Run All of ``name`` to finish; check every code cell ran and none shows an error."""
    start = time.monotonic()
    prompts = wait_until_done(page, server, name, RUN_TIMEOUT_S)
    print(f"{name}: all cells done {time.monotonic() - start:.1f} s after this test began waiting")
    shot("after_run_all")
    errors = error_outputs(page)
    assert errors == [], f"{name}: cells show errors in JupyterLab:\n" + "\n---\n".join(e[-1500:] for e in errors)
    not_run = [i for i, p in enumerate(prompts) if not re.fullmatch(r"\[\d+\]:", p)]
    assert prompts and not not_run, f"{name}: code cells {not_run} did not run (prompts {prompts})"


def _image_src(output) -> str | None:
    images = output.locator("img")
    return images.first.get_attribute("src") if images.count() else None


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _check_picture_fits(page, selector: str, what: str) -> None:
    """The figure is drawn at its PNG's size (not stretched or shrunk) and, with its controls and table, fits in
    the notebook's visible height."""
    size = page.viewport_size
    geometry = picture_geometry(page, selector)
    print(f"{what} at {size['width']}x{size['height']}: {geometry}")
    assert abs(geometry["shown"] - geometry["natural"]) <= 1, f"{what}: the figure is scaled ({geometry})"
    assert geometry["height"] <= geometry["visible"], f"{what}: controls, figure and table need scrolling ({geometry})"


def _press_keeps_height(page, selector: str, press: Callable[[], None], wait: Callable[[], object],
                        what: str) -> object:  # fmt: skip
    """Press a key on a slider and wait for the redraw, sampling the height of the widget's output area all the
    while; the cell must keep its height (an Output cleared then refilled collapses for 140-170 ms)."""
    page.bring_to_front()
    start_height_sampling(page, selector)
    press()
    result = wait()
    time.sleep(0.3)  # the new image decodes; a late collapse would show here
    heights = stop_height_sampling(page)
    print(f"{what}: {len(heights)} height samples, {min(heights):.1f} … {max(heights):.1f} px")
    assert len(heights) >= 10, f"{what}: too few height samples ({heights})"
    assert max(heights) - min(heights) <= 1.0, f"{what}: the cell's height changed during the update: {heights}"
    return result


def test_an_error_in_a_cell_is_seen(lab, started):
    server, page = lab[0], started[RAISES]
    prompts = wait_until_done(page, server, RAISES, RUN_TIMEOUT_S)
    errors = error_outputs(page)
    assert len(errors) == 1 and "ZeroDivisionError" in errors[0], errors
    assert re.fullmatch(r"\[\d+\]:", prompts[1]) and not re.fullmatch(r"\[\d+\]:", prompts[2]), prompts


def _explorer_rows(level: int, row: int, col: int) -> list[tuple[int, float, float]]:
    """(flat index, w, h) of each anchor at (row, col) of ``level`` of SSD512, worked out by hand: squares s_k and
    sqrt(s_k s_k+1), then a lying and a standing box per aspect ratio; indices level by level, row, column, k."""
    cfg = SSD512_VOC
    s_k, s_next = cfg.box_sizes[level], cfg.box_sizes[level + 1]
    shapes = [(s_k, s_k), (math.sqrt(s_k * s_next),) * 2]
    for ratio in cfg.aspect_ratios[level]:
        shapes += [(s_k * math.sqrt(ratio), s_k / math.sqrt(ratio)), (s_k / math.sqrt(ratio), s_k * math.sqrt(ratio))]
    fm, k = cfg.feature_map_sizes[level], len(shapes)
    first = sum(f * f * (2 + 2 * len(r)) for f, r in zip(cfg.feature_map_sizes[:level], cfg.aspect_ratios))
    return [(first + (row * fm + col) * k + kk, w, h) for kk, (w, h) in enumerate(shapes)]


def test_anchor_explorer_redraws_when_a_slider_moves(lab, started):
    server, page = lab[0], started[NB02]
    with screenshots(page, NB02) as shot:
        _ran_without_errors(page, server, NB02, shot)

        output = page.locator(".ssd-anchor-explorer")
        assert output.count() == 1, f"expected one anchor explorer (.ssd-anchor-explorer), found {output.count()}"
        explorer = page.locator(".widget-vbox", has=output)
        output.scroll_into_view_if_needed()
        output.locator("img").first.wait_for(timeout=REDRAW_TIMEOUT_S * 1000)
        table = output.locator(".ssd-anchor-table")
        assert table.count() == 1, "the explorer shows no table (.ssd-anchor-table)"
        assert blank_selects(page) == [], "a dropdown shows no value"
        level, row, col = (int(slider_readout(explorer, label)) for label in ("level", "row i (y)", "col j (x)"))
        src_before, rows_before = _image_src(output), table_rows(table)
        picture_before = output.locator("img").first.screenshot()
        _check_picture_fits(page, EXPLORER, "the explorer")
        shot("explorer_before")

        pressed = time.monotonic()

        def redrawn() -> tuple[str, list[list[str]]]:
            src = wait_until_changed(lambda: _image_src(output), src_before, REDRAW_TIMEOUT_S, "the explorer figure")
            return src, wait_until_changed(lambda: table_rows(table), rows_before, REDRAW_TIMEOUT_S, "the table")

        src_after, rows_after = _press_keeps_height(page, EXPLORER, lambda: press_on_slider(
            explorer, "col j (x)", "ArrowRight"), redrawn, f"{NB02} explorer at 1366x768")  # fmt: skip
        print(f"{NB02}: explorer redrawn {time.monotonic() - pressed:.1f} s after the key press")
        shot("explorer_after")

        assert slider_readout(explorer, "col j (x)") == str(col + 1)
        assert src_after != src_before and output.locator("img").first.screenshot() != picture_before
        # One cell to the right (SSD paper, section 2.2; order of default_boxes): the same anchor shapes, flat
        # indices one location (k anchors) further on, the centre one step to the right.
        want = _explorer_rows(level, row, col + 1)
        assert len(rows_before) == len(rows_after) == len(want), (rows_before, rows_after)
        for before, after, (index, w, h) in zip(rows_before, rows_after, want):
            assert (int(after[1]), after[3], after[4]) == (index, f"{w:.1f}", f"{h:.1f}"), (after, index, w, h)
            assert int(after[1]) == int(before[1]) + len(want) and after[2:5] == before[2:5], (before, after)
        assert [r[5] for r in rows_after] != [r[5] for r in rows_before], "the IoU column did not change"
        step = SSD512_VOC.steps[level]
        caption = table.locator("caption").inner_text()
        assert f"col {col + 1})" in caption, caption
        assert f"centre ({(col + 1.5) * step:.1f}, {(row + 0.5) * step:.1f}) px" in caption, caption

        page.set_viewport_size(LARGE)  # the same session on the large screen
        output.scroll_into_view_if_needed()
        _check_picture_fits(page, EXPLORER, "the explorer")
        _press_keeps_height(page, EXPLORER, lambda: press_on_slider(explorer, "col j (x)", "ArrowRight"),
                            lambda: wait_until_changed(lambda: _image_src(output), src_after, REDRAW_TIMEOUT_S,
                                                       "the explorer figure"), f"{NB02} explorer at 1920x1080")
        assert slider_readout(explorer, "col j (x)") == str(col + 2)
        shot("explorer_large")


def test_threshold_widget_redraws_when_a_slider_moves(lab, started):
    if NB07 not in started:
        pytest.skip(f"notebooks/{NB07} does not exist yet")
    server, page = lab[0], started[NB07]
    with screenshots(page, NB07) as shot:
        _ran_without_errors(page, server, NB07, shot)

        widget = page.locator(".ssd-threshold-widget")
        assert widget.count() == 1, f"expected one threshold widget (.ssd-threshold-widget), found {widget.count()}"
        widget.scroll_into_view_if_needed()
        widget.locator("img").first.wait_for(timeout=REDRAW_TIMEOUT_S * 1000)
        numbers = widget.locator("table.ssd-threshold-numbers")
        assert numbers.count() == 1, "the threshold widget shows no numbers (table.ssd-threshold-numbers)"

        def read_numbers() -> dict[str, str]:
            return {row[0]: row[1] for row in table_rows(numbers) if len(row) == 2}

        assert blank_selects(page) == [], "a dropdown shows no value"
        score = float(slider_readout(widget, "score threshold"))
        src_before, numbers_before = _image_src(widget), read_numbers()
        picture_before = widget.locator("img").first.screenshot()
        _check_picture_fits(page, THRESHOLDS, "the threshold widget")
        shot("threshold_before")

        pressed = time.monotonic()

        def redrawn() -> tuple[str, dict[str, str]]:
            src = wait_until_changed(lambda: _image_src(widget), src_before, REDRAW_TIMEOUT_S, "the detections")
            return src, wait_until_changed(read_numbers, numbers_before, REDRAW_TIMEOUT_S, "the numbers")

        src_after, numbers_after = _press_keeps_height(page, THRESHOLDS, lambda: press_on_slider(
            widget, "score threshold", "ArrowRight"), redrawn, f"{NB07} thresholds at 1920x1080")  # fmt: skip
        print(f"{NB07}: threshold widget redrawn {time.monotonic() - pressed:.1f} s after the key press")
        shot("threshold_after")

        assert src_after != src_before and widget.locator("img").first.screenshot() != picture_before
        new_score = float(slider_readout(widget, "score threshold"))
        assert new_score == pytest.approx(score + 0.05)
        assert float(numbers_after["score threshold"]) == pytest.approx(new_score)
        # A higher score threshold keeps a subset of the detections (NMS only lets a box suppress lower ones).
        assert _number(numbers_after["detections / image"]) <= _number(numbers_before["detections / image"])
        recall_before = _number(numbers_before["recall"].split()[0])
        assert _number(numbers_after["recall"].split()[0]) <= recall_before
        tp_fp_before = [int(v) for v in numbers_before["true / false positives"].split("/")]
        tp_fp_after = [int(v) for v in numbers_after["true / false positives"].split("/")]
        assert all(a <= b for a, b in zip(tp_fp_after, tp_fp_before)), (tp_fp_before, tp_fp_after)

        page.set_viewport_size(SMALL)  # the same session on the small screen
        widget.scroll_into_view_if_needed()
        _check_picture_fits(page, THRESHOLDS, "the threshold widget")
        _press_keeps_height(page, THRESHOLDS, lambda: press_on_slider(widget, "NMS IoU", "ArrowLeft"),
                            lambda: wait_until_changed(lambda: _image_src(widget), src_after, REDRAW_TIMEOUT_S,
                                                       "the detections"), f"{NB07} thresholds at 1366x768")
        shot("threshold_small")
