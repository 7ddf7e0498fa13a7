"""Fixtures for the chat's tests: a real headless Chromium driven by Playwright, and a quiet Chainlit import.

The browser is Debian's `/usr/bin/chromium` (Playwright's own browser download does not work
on these machines); without it the browser tests fail, saying what to install. One browser
serves a test module; each test gets a fresh context (no cookies carried over) and page.

Importing Chainlit in this process (the data layer tests do) writes `.chainlit/` into its
app root and loads `.env` from the working directory: both are pointed into a temporary
folder before any test module imports it, so neither the checkout nor a developer's `.env`
is touched or read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

_CHAINLIT_ROOT = Path(tempfile.mkdtemp(prefix="opsgraph-chainlit-root-"))
os.environ.setdefault("CHAINLIT_APP_ROOT", str(_CHAINLIT_ROOT))
os.environ.setdefault("CHAINLIT_ENV_FILE", str(_CHAINLIT_ROOT / "no-such.env"))

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root, in a VM without user namespaces for the sandbox
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PAGE_TIMEOUT_MS = 30_000  # generous: a loaded 2-core machine renders slowly


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for one test module.

    Not for the session: Playwright's sync API keeps an event loop running in the test thread
    while it is open, and every later `asyncio.run` in the suite (the MCP tests) would fail.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (its own cookies), closed after the test."""
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
