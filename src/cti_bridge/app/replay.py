"""``cti-bridge replay``: recorded AMI streams through the real parser, model and store.

For checking cti-bridge against recordings of a PBX (one file = the bytes one AMI
connection received, as in ``tests/fixtures/ami-traces/``) and for importing them. Each
file is replayed as its own connection into its own call model; the records go into the
configured database (idempotently: replaying a file twice changes nothing) or, without
``--config``, into a temporary one. Then the calls are printed as the API serves them.

Times come from ``Timestamp:`` headers when the recording has them. Without them the real
arrival times are not in the file, so each message is taken to arrive ``gap`` seconds
after the previous one: outcomes, queues, rings and answers are exact, durations are not.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from cti_bridge.ami.parser import AMIParser, FramingError
from cti_bridge.calls.events import DomainEvent
from cti_bridge.calls.model import CallModel
from cti_bridge.store import open_store, upgrade

from .config import Config
from .node import topology_for

#: Columns of the table the command prints without ``--json``.
COLUMNS = (
    "linkedid",
    "caller_number",
    "queue",
    "outcome",
    "answered_by",
    "rang",
    "wait_seconds",
    "talk_seconds",
    "transfers",
    "hung_up_by",
)


class ReplayError(Exception):
    user_facing = True


def replay_file(path: Path, model: CallModel, *, gap: float) -> tuple[list[DomainEvent], list[str]]:
    """The domain events one recorded connection produces, and its calls' linkedids."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ReplayError(f"{path}: cannot read: {error.strerror}") from None
    try:
        messages = AMIParser().feed(data)
    except FramingError as error:
        raise ReplayError(f"{path}: not an AMI stream: {error}") from None
    if not messages:
        raise ReplayError(f"{path}: no AMI messages in it")
    produced: list[DomainEvent] = []
    lists: set[str] = set()  # ActionIDs of event lists in progress, as the live link sees them
    at = 0.0
    for msg in messages:
        at += gap
        action_id = msg.get("ActionID")
        if msg.get("Event") is None:
            if action_id is not None and msg.get("EventList") == "start":
                lists.add(action_id)
            continue
        if action_id in lists:
            # A list item answers our own action: the live link hands it to the action's
            # caller (resync), never to the model as a live event.
            if msg.get("EventList") == "Complete":
                lists.discard(action_id)
            continue
        produced.extend(model.feed(msg, at))
    seen: list[str] = []
    for event in produced:
        if event.call.linkedid not in seen:
            seen.append(event.call.linkedid)
    return produced, seen


def run_replay(
    files: Sequence[str],
    *,
    config: Config | None,
    pbx: str | None,
    gap: float,
    as_json: bool,
    out: TextIO,
) -> int:
    paths = [Path(f) for f in files]
    with tempfile.TemporaryDirectory(prefix="cti-bridge-replay-") as scratch:
        if config is not None:
            store = open_store(config.database.url, default_region=config.phone.default_region)
            name = pbx or (config.pbx[0].name if config.pbx else "replay")
            topology = next((topology_for(p) for p in config.pbx if p.name == name), None)
        else:
            url = f"sqlite:///{Path(scratch) / 'replay.sqlite3'}"
            upgrade(url)
            store = open_store(url)
            name, topology = pbx or "replay", None
        try:
            for path in paths:
                model = CallModel(name, topology=topology)
                events, linkedids = replay_file(path, model, gap=gap)
                store.calls.apply(events)
                calls = [store.queries.find_call(name, linkedid) for linkedid in linkedids]
                live = {c.linkedid for c in model.live_calls}
                _print(path, [c for c in calls if c is not None], live, as_json, out)
        finally:
            store.close()
    return 0


def _print(
    path: Path, calls: Iterable[dict[str, Any]], live: set[str], as_json: bool, out: TextIO
) -> None:
    calls = list(calls)
    if as_json:
        for call in calls:
            out.write(
                json.dumps(
                    {"file": str(path), "live": call["linkedid"] in live, **call},
                    ensure_ascii=False,
                )
                + "\n"
            )
        return
    out.write(f"== {path}: {len(calls)} call(s)\n")
    for call in calls:
        cells = []
        for column in COLUMNS:
            value = call[column]
            if column == "transfers":
                value = ",".join(f"{t['kind']}:{t['from']}->{t['to']}" for t in value) or "-"
            elif column == "rang":
                value = ",".join(value) or "-"
            elif isinstance(value, float):
                value = f"{value:.3f}"
            cells.append(f"{column}={'-' if value is None else value}")
        if call["linkedid"] in live:
            cells.append("(still live at the end of the file)")
        out.write("  " + " ".join(cells) + "\n")
