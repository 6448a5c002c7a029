"""The records room: every call written once, from the call model's events.

``writer`` (``RecordWriter``: queue, lanes, back-off, on the store's ``CallRecords``
port) writes them in bounded pool threads;
``wiring`` gives it the node's domain events and resyncs and shows its figures under
``/healthz``'s ``database.records`` and in ``/metrics``.
"""

from .wiring import THREADS, install

__all__ = ["THREADS", "install"]
