"""The portal and the admin console in a real browser: Debian's Chromium, driven by
Playwright, against the running dev stack (`portal-mfa dev`, as in tests/e2e).

No browser is downloaded: scripts/install.sh installs Debian's `chromium`, and the tests
launch /usr/bin/chromium headless with everything that would reach the network off.
Each test saves its screenshots under build/browser-screens/TEST/ (gitignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.dev_stack import RunningStack, stack_running
from tests.e2e.portal_client import Portal

CHROMIUM = Path("/usr/bin/chromium")
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
SCREENS = Path(__file__).resolve().parents[2] / "build" / "browser-screens"
# Each step waits on a page answer, some on a change crossing Kafka (a few hundred ms).
STEP_TIMEOUT_MS = 15_000


# Package scope (tests/browser is a package): the stack and the browser stop after the
# last browser test, so they do not run on beside the other tiers' stacks.
@pytest.fixture(scope="package")
def stack() -> Iterator[RunningStack]:
    """One dev stack (services and both frontends) for the browser tests."""
    with stack_running() as running:
        yield running


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run scripts/install.sh (as root, with apt-get)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Screens:
    folder: Path
    taken: list[Path] = field(default_factory=list)

    def shot(self, page: Page, label: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture
def screens(request: pytest.FixtureRequest) -> Screens:
    folder = SCREENS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Screens(folder)


@dataclass
class Web:
    """Browsers for one test: each `person()` is a separate browser profile (cookies)."""

    browser: Browser
    stack: RunningStack
    contexts: list[BrowserContext] = field(default_factory=list)

    def person(self, *, phone: bool = False) -> Page:
        context = self.browser.new_context(
            viewport={"width": 390, "height": 844} if phone else {"width": 1100, "height": 800},
            accept_downloads=True,
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        # A page that breaks its own CSP or fails a script says so in the console (pages
        # answered 4xx on purpose, such as a wrong code's, are logged too: not counted).
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.console_errors = errors  # type: ignore[attr-defined]
        return page

    def portal(self, org: str, path: str = "/login") -> str:
        return self.stack.url("portal_web", f"/portals/{org}{path}")

    def console(self, path: str) -> str:
        return self.stack.url("console_web", path)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def web(browser: Browser, stack: RunningStack) -> Iterator[Web]:
    running = Web(browser, stack)
    yield running
    running.close()


@pytest.fixture
def portal(stack: RunningStack) -> Iterator[Portal]:
    """A fresh org of its own; its admin acts through the CLI where a test sets it up."""
    with closing(Portal(stack)) as running:
        yield running
