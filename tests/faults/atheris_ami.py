"""Coverage-guided fuzzing of the AMI link and the call model with atheris (libFuzzer).

    PYTHONPATH=src:. python tests/faults/atheris_ami.py -max_total_time=60 CORPUS_DIR

Each input is split by atheris' data provider into read boundaries and a byte stream,
fed through ``AMIProtocol`` into a ``CallModel`` exactly as ``test_fuzz_ami.py`` does,
and held to the same invariants (``check_model``): an exception or a broken invariant
is a crash, and libFuzzer keeps the input that caused it. ``test_fuzz_ami.py`` runs this
for a few seconds on a seed corpus of the recorded traces (their first kilobytes).
"""

from __future__ import annotations

import logging
import sys

import atheris
import structlog

with atheris.instrument_imports(include=["cti_bridge"]):
    import cti_bridge.ami.parser
    import cti_bridge.ami.protocol
    import cti_bridge.calls.model  # noqa: F401 - instrumented before the tests import them

from tests.faults.test_fuzz_ami import Link, check_model

MAX_READS = 16


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    cuts = [
        provider.ConsumeIntInRange(0, len(data))
        for _ in range(provider.ConsumeIntInRange(0, MAX_READS))
    ]
    stream = provider.ConsumeBytes(provider.remaining_bytes())
    link = Link()
    link.feed(stream, cuts)
    check_model(link)


def main() -> None:
    # The link logs every odd message it drops; millions of inputs need no log.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
