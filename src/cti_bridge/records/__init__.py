"""The records room: every call written once, from the call model's events.

``writer`` (``RecordWriter``: queue, lanes, back-off, on the store's ``CallRecords``
port) writes them in bounded pool threads;
``spool`` keeps what it has not written yet on local disk (checksummed segment files,
replayed at start-up; ``codec`` is the events' JSON); ``wiring`` gives the writer the
node's domain events and resyncs, replays the spool before the PBX links start, and
shows their figures under ``/healthz``'s ``database.records`` and ``database.spool``
and in ``/metrics``.
"""

from .wiring import THREADS, install

__all__ = ["THREADS", "install"]
