"""Settings for the whole suite.

Hypothesis' per-example deadline is a timed test in disguise: on a loaded 2-core CI
machine a 200 ms deadline fails correct code (seen: 265 ms for one example of
``test_every_format_of_one_number_agrees``). Speed belongs in ``bench/``; here an example
only has to be right. ``HYPOTHESIS_PROFILE=dev`` keeps the default deadline for a local
look at slow examples.

The real Asterisk 22 (``asterisk``, ``asterisk_factory``) is one session fixture for every
folder (integration and browser tests alike): ``tests/support/asterisk_pbx.py``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.support.asterisk_pbx import asterisk, asterisk_factory, mark_asterisk_tests

__all__ = ["asterisk", "asterisk_factory"]

settings.register_profile("ci", deadline=None)
settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_asterisk_tests(items)
