"""Headless Chromium for the gallery's tests: Debian's /usr/bin/chromium driven by Playwright (never a
browser of Playwright's own). With CI=true a missing browser fails the tests instead of skipping them."""

import os
import shutil
from pathlib import Path

import pytest

from tests.support.services import unavailable

CHROMIUM = os.environ.get("PIXYPROXY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Set to a folder (docs/gallery) to save each main screen there; otherwise they go to the test's tmp.
SHOTS = os.environ.get("PIXYPROXY_GALLERY_SHOTS")


# Module scope, not session: Playwright's sync API keeps an event loop running while it is open, and
# every asyncio test after it (asyncio.run, pytest-asyncio) would find that loop and fail.
@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        unavailable(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python (pip package playwright)")
    from playwright.sync_api import expect

    # Expectations wait on what the page shows; on a loaded CI machine that can take longer than 5 s.
    expect.set_options(timeout=20_000)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Console:
    """What a page said on its console; errors fail the test unless the test expects them."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def allow(self, fragment: str) -> None:
        self.allowed.append(fragment)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(fragment in e for fragment in self.allowed)]


@pytest.fixture
def open_page(browser, tmp_path):
    """open_page(base_url, **context options) -> (page, console); every page is checked at teardown."""
    opened = []

    def open_(base_url: str, **options):
        options.setdefault("viewport", {"width": 1280, "height": 720})
        context = browser.new_context(base_url=base_url, **options)
        context.set_default_timeout(20_000)
        page = context.new_page()
        console = Console()
        page.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
        opened.append((context, console))
        return page, console

    yield open_
    problems = []
    for context, console in opened:
        problems += console.unexpected()
        context.close()
    assert not problems, f"console errors: {problems}"


# Every image in the viewport has its picture (lazy ones included) before a screenshot is taken.
IMAGES_IN_VIEW_SHOWN = """() => [...document.images].filter(img => {
    const box = img.getBoundingClientRect();
    return img.offsetParent && box.bottom > 0 && box.top < innerHeight && !img.closest('dialog:not([open])');
}).every(img => img.complete && img.naturalWidth > 0)"""


@pytest.fixture
def screenshot(tmp_path):
    """screenshot(page, name): saves a PNG of what the page shows (under docs/gallery when asked)."""
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        page.wait_for_function(IMAGES_IN_VIEW_SHOWN)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return take
