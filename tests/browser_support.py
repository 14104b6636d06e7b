"""Headless Chromium (Debian's package) driven by Playwright, for the tests of the pages; never a
browser that `playwright install` downloads."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator["Browser"]:
    """The browser, or the test skipped where it is missing (failed in CI, which installs it)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - requirements-dev.txt installs it
        sync_playwright = None  # type: ignore[assignment]
    if sync_playwright is None or not shutil.which(CHROMIUM):
        reason = "the browser test needs python playwright and Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    """One browser for a module's page tests (tests/conftest.py loads this module as a plugin)."""
    with chromium() as launched:
        yield launched
