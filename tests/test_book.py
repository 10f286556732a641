"""The book (`make book`, scripts/build_book.py): the committed notebooks as a static site, never re-executed.

Built once per test session with warnings as errors, then checked as files (every notebook page in order with
every figure of its notebook, the landing page, the API reference linking each name to its notebook, Binder and
Colab buttons on the same notebook) and in headless Chromium (images load, search finds notebook 05, no traceback or
widget error on a page). The book's tools (Sphinx, myst-nb, sphinx-book-theme, npm) are part of the maintainer
install: missing on CI is a failure, elsewhere a skip.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import re
import shutil
import threading
from pathlib import Path

import nbformat
import pytest
from browser_helpers import CHROMIUM, in_ci, launch_chromium
from notebook_harness import REPO_ROOT, notebook_paths

NOTEBOOKS = notebook_paths()


def _require(what: str, ok: bool) -> None:
    if not ok:
        message = f"{what} is not installed (maintainer install: make setup)"
        if in_ci():
            pytest.fail(f"{message}; on CI (CI=true) the book must build")
        pytest.skip(message)


@pytest.fixture(scope="session")
def book(tmp_path_factory) -> Path:
    for module in ("sphinx", "myst_nb", "sphinx_book_theme"):
        _require(module, importlib.util.find_spec(module) is not None)
    _require("npm (Node.js)", shutil.which("npm") is not None
             or (REPO_ROOT / "book" / "node_modules").is_dir())  # fmt: skip
    spec = importlib.util.spec_from_file_location("build_book", REPO_ROOT / "scripts" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    out = tmp_path_factory.mktemp("book")
    assert build_book.main(["--out", str(out)]) == 0, "sphinx-build -W failed: see the warnings above"
    return out / "html"


def _page(book: Path, name: str) -> str:
    return (book / name).read_text(encoding="utf-8")


def _png_outputs(path: Path) -> int:
    nb = nbformat.read(str(path), as_version=4)
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
def test_one_page_per_notebook_in_order_with_every_figure(book):
    index = _page(book, "index.html")
    positions = [index.find(f'href="notebooks/{p.stem}.html"') for p in NOTEBOOKS]
    assert -1 not in positions, "the landing page links every notebook"
    assert positions == sorted(positions), "in order"
    for path in NOTEBOOKS:
        html = _page(book, f"notebooks/{path.stem}.html")
        images = re.findall(r'<img[^>]+src="([^"]+)"', html)
        figures = [src for src in images if "_images/" in src or src.startswith("data:image/png")]
        assert len(figures) >= _png_outputs(path), f"{path.stem}: {len(figures)} figures for {_png_outputs(path)}"
        for src in figures:
            if not src.startswith("data:"):
                assert (book / "notebooks" / src).resolve().is_file(), f"{path.stem}: missing {src}"
        assert "Traceback (most recent call last)" not in html
        # the navigation: previous / next page
        assert 'class="left-prev"' in html or path == NOTEBOOKS[0]
        assert 'class="right-next"' in html


@pytest.mark.slow
def test_landing_page_says_what_for_whom_how_long_and_how_to_run(book):
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", _page(book, "index.html")))
    for needle in ("For whom", "make lab", "make test", "30–45 min", "arXiv 1512.02325", "Build your own SSD"):
        assert needle in text, needle


@pytest.mark.slow
def test_equations_are_rendered_by_mathjax(book):
    html = _page(book, "notebooks/01_constants.html")
    assert "mathjax" in html.lower() and ('class="math' in html)


@pytest.mark.slow
def test_api_reference_documents_every_public_name_and_links_its_notebook(book):
    import ssd_tutorial

    html = _page(book, "api.html")
    for name in ssd_tutorial.__all__:
        if name.startswith("__"):
            continue
        assert re.search(rf'id="ssd_tutorial\.[\w.]*\b{name}"', html), f"{name} is not documented"
    links = set(re.findall(r'href="notebooks/(\d\d_\w+)\.html"', html))
    assert links and links <= {p.stem for p in NOTEBOOKS}
    assert html.count("<em>Introduced in:</em>") == len([n for n in ssd_tutorial.__all__ if not n.startswith("__")])


@pytest.mark.slow
def test_binder_and_colab_buttons_open_the_same_notebook(book):
    for path in NOTEBOOKS[:2] + NOTEBOOKS[-1:]:
        html = _page(book, f"notebooks/{path.stem}.html")
        binder = re.findall(r'href="(https://mybinder\.org/[^"]+)"', html)
        colab = re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', html)
        assert binder and colab, path.stem
        assert binder[0].endswith(f"urlpath=lab/tree/notebooks/{path.name}")
        assert colab[0].endswith(f"/blob/main/notebooks/{path.name}")


@pytest.mark.slow
def test_widget_state_is_embedded_with_a_local_widget_manager(book):
    html = _page(book, "notebooks/02_anchor_tiling.html")
    assert "application/vnd.jupyter.widget-state+json" in html and "application/vnd.jupyter.widget-view+json" in html
    assert "_static/widgets/embed.js" in html and (book / "_static" / "widgets" / "embed.js").is_file()
    assert "_static/mathjax/tex-mml-chtml.js" in html and (book / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html  # everything is served by the site itself


@contextlib.contextmanager
def _serve(root: Path):
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def _check_page(page, url: str) -> None:
    page.goto(url, wait_until="networkidle")
    page.wait_for_function("Array.from(document.images).every(img => img.complete)", timeout=30_000)
    broken = page.evaluate("Array.from(document.images).filter(i => i.naturalWidth === 0).map(i => i.src.slice(0, 80))")
    assert broken == [], f"{url}: images that did not load: {broken}"
    text = page.inner_text("body")
    assert "Traceback (most recent call last)" not in text, url
    assert "Error displaying widget" not in text, url


@pytest.mark.browser
@pytest.mark.slow
def test_book_in_chromium_images_search_and_widgets(book):
    playwright_api = pytest.importorskip("playwright.sync_api")
    _require("Debian's chromium (/usr/bin/chromium)", CHROMIUM.exists())
    with _serve(book) as base, playwright_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            _check_page(page, f"{base}/index.html")
            assert page.locator('a[href="notebooks/05_loss.html"]').count() >= 1
            for name in ("02_anchor_tiling", "07_evaluation_and_inference"):
                _check_page(page, f"{base}/notebooks/{name}.html")
                assert page.evaluate("Array.from(document.images).filter(i => i.naturalWidth > 0).length") >= 3
                # the saved widget state is drawn by the HTML manager: real controls, not a repr
                page.wait_for_selector(".jupyter-widgets", timeout=30_000)
                assert page.locator(".widget-slider, .widget-dropdown, .widget-readout").count() >= 1, name
                assert "VBox(children=" not in page.inner_text("body")
            page.goto(f"{base}/notebooks/01_constants.html", wait_until="networkidle")
            page.wait_for_selector("mjx-container", timeout=30_000)  # MathJax typeset the equations
            page.goto(f"{base}/search.html?q=hard+negative+mining", wait_until="networkidle")
            page.wait_for_selector("#search-results ul.search li", timeout=30_000)
            hits = page.locator("#search-results ul.search li a").evaluate_all("links => links.map(a => a.href)")
            assert any("notebooks/05_loss.html" in href for href in hits), hits
            assert errors == [], f"JavaScript errors: {errors}"
        finally:
            browser.close()


def test_build_book_refuses_a_public_name_without_its_notebook(monkeypatch):
    spec = importlib.util.spec_from_file_location("build_book_check", REPO_ROOT / "scripts" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    stems = [p.stem for p in NOTEBOOKS]
    assert "Introduced in:" in build_book.api_page(stems)
    import ssd_tutorial

    def undocumented():
        pass

    undocumented.__module__ = "ssd_tutorial.config"
    monkeypatch.setattr(ssd_tutorial, "undocumented", undocumented, raising=False)
    monkeypatch.setattr(ssd_tutorial, "__all__", [*ssd_tutorial.__all__, "undocumented"])
    monkeypatch.setattr(build_book, "introduced_in", lambda obj: None if obj is undocumented else "01_constants")
    with pytest.raises(SystemExit, match="ssd_tutorial.config.undocumented"):
        build_book.api_page(stems)


def test_book_sources_name_every_notebook():
    index = (REPO_ROOT / "book" / "index.md").read_text()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.stem}\n" in index and f"(notebooks/{path.name})" in index, path.stem
