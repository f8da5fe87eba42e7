"""Fixtures for the page's browser tests: Debian's Chromium driven by Playwright (never a downloaded
browser), a page that records its JavaScript errors, and full-page screenshots kept as test artifacts
in $INDI_TEST_ARTIFACTS (default: test-artifacts/browser/ in the repository)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[3]
DESKTOP = {"width": 1280, "height": 900}
WAIT_MS = 20_000   # what a page may take to show a change on a busy machine (longer waits say so)


def artifacts_dir() -> Path:
    path = Path(os.environ.get("INDI_TEST_ARTIFACTS") or REPO / "test-artifacts" / "browser")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def chromium():
    """Chromium for one test module. Not for the session: Playwright's sync API runs an event loop in
    this thread while it is active, and later tests call asyncio.run()."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup installs it)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -e '.[test]'")
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Shots:
    """Numbered full-page screenshots of one test: <test>-01-<step>.png, ..."""

    def __init__(self, test_name: str) -> None:
        self.prefix = re.sub(r"[^\w.-]+", "_", test_name)
        self.count = 0
        self.dir = artifacts_dir()
        for old in self.dir.glob(f"{self.prefix}-*.png"):
            old.unlink()
        self.paths: list[Path] = []

    def __call__(self, page, step: str) -> Path:
        self.count += 1
        name = re.sub(r"[^\w.-]+", "_", step)
        path = self.dir / f"{self.prefix}-{self.count:02d}-{name}.png"
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        return path


@pytest.fixture
def shots(request) -> Shots:
    return Shots(request.node.name)


@pytest.fixture
def page(chromium, request, shots):
    """A fresh browser page (own context: no storage shared between tests) at desktop size. Uncaught
    JavaScript errors are collected in page.js_errors; a failing test leaves a last screenshot."""
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        try:
            shots(page, "FAILED")
        except Exception:  # noqa: BLE001 - the page may be gone
            pass
    context.close()
