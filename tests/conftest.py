"""Settings for the whole suite.

Hypothesis' per-example deadline is a timed test in disguise: on a loaded 2-core CI
machine a 200 ms deadline fails correct code (seen: 265 ms for one example of
``test_every_format_of_one_number_agrees``). Speed belongs in ``bench/``; here an example
only has to be right. ``HYPOTHESIS_PROFILE=dev`` keeps the default deadline for a local
look at slow examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", deadline=None)
settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
