"""The daemon's whole log as it writes it, for a test that reads the lines themselves."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog

from cti_bridge.log import configure_logging


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Everything the daemon (and an in-process simulator) logs, at DEBUG, as written;
    the logging set-up is put back afterwards."""
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("DEBUG", out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.reset_defaults()
