"""The records room: every call written once, from the call model's events.

The writer itself is ``store/writer.py`` (``RecordWriter``: queue, lanes, back-off);
``wiring`` gives it the node's domain events and resyncs and shows its figures under
``/healthz``'s ``database.records`` and in ``/metrics``.
"""

from .wiring import THREADS, install

__all__ = ["THREADS", "install"]
