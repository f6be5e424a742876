"""The e2e tier's fixtures: one dev stack for the session (tests.dev_stack), and orgs on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import pytest

from tests.dev_stack import RunningStack, stack_running
from tests.e2e.portal_client import Portal


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    """One dev stack for the e2e session, stopped with SIGTERM at the end."""
    with stack_running() as running:
        yield running


@pytest.fixture
def portal(stack: RunningStack) -> Iterator[Portal]:
    """A fresh org of its own."""
    with closing(Portal(stack)) as running:
        yield running


@pytest.fixture
def other_portal(stack: RunningStack) -> Iterator[Portal]:
    """A second, unrelated org."""
    with closing(Portal(stack)) as running:
        yield running
