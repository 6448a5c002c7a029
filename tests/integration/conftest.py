"""Integration fixtures: the real Asterisk 22 of the session (``asterisk``,
``asterisk_factory``) comes from ``tests/support/asterisk_pbx.py`` through
``tests/conftest.py``, shared with the browser tests; see there for the ``asterisk``
mark and ``CTI_SKIP_ASTERISK``."""
