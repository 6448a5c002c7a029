"""Fixtures for the browser tests: a real daemon per test and Chromium per operator.

Every test here is marked ``browser`` and runs in CI: a missing Chromium fails the test
with the install step, it never skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.asterisk_daemon import pbx_daemon, queue_events
from tests.browser.console_harness import CHROMIUM, CHROMIUM_ARGS, ConsoleServer, chromium_problem

__all__ = ["pbx_daemon", "queue_events"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if {"screen", "chromium"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConsoleServer]:
    """The test's own daemon; with the ``dialer`` mark, running the callback dialer."""
    running = ConsoleServer(tmp_path, dialer=request.node.get_closest_marker("dialer") is not None)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """One daemon for a module's tests that change nothing (they only read or are refused)."""
    running = ConsoleServer(tmp_path_factory.mktemp("daemon"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    problem = chromium_problem()
    if problem is not None:
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def chromium(
    playwright: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Any]]:
    """chromium(url) -> a fresh Chromium (own profile) on ``url``.

    Each page records the WebSocket frames it receives (``page.frames_received``) and the
    script errors it raises (``page.errors``), so tests can prove what never arrived.
    """
    contexts: list[Any] = []

    def open_page(url: str, *, width: int = 1280, height: int = 900) -> Any:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        contexts.append(context)
        page = context.pages[0] if context.pages else context.new_page()
        page.frames_received = []
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on(
            "console",
            lambda message: page.errors.append(message.text) if message.type == "error" else None,
        )
        page.on(
            "websocket",
            # Playwright wants a Python function here, not a bound builtin like list.append.
            lambda ws: ws.on("framereceived", lambda frame: page.frames_received.append(frame)),  # noqa: PLW0108
        )
        page.set_default_timeout(10_000)
        page.goto(url)
        return page

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def screen(chromium: Callable[..., Any], server: ConsoleServer) -> Callable[..., Any]:
    """screen() -> a fresh Chromium (own profile) on the console's login page (see
    ``chromium``)."""

    def open_screen(*, width: int = 1280, height: int = 900) -> Any:
        return chromium(server.url, width=width, height=height)

    return open_screen
