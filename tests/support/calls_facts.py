"""Recorded traces and the facts a correct call model derives from them.

The facts are transcribed from the trace READMEs (``tests/fixtures/ami-traces/README.md``
says what each trace is); they are the acceptance criteria of the call model. The
helpers replay a trace into a ``CallModel`` with a fake clock: one second per message,
or the trace's own ``Timestamp:`` headers where it has them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cti_bridge.ami.parser import Message, parse_stream
from cti_bridge.calls import CallModel
from cti_bridge.calls.events import (
    Call,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    DomainEvent,
    OperatorRinging,
    RingEnded,
)
from tests.support.paths import TRACES

A1, A2, L2001 = "Local/1001@agents", "Local/1002@agents", "Local/2001@agents"
P1, P2 = "PJSIP/1001", "PJSIP/1002"


@cache
def _messages(name: str) -> tuple[Message, ...]:
    return tuple(parse_stream((TRACES / name).read_bytes()))


def messages(name: str) -> list[Message]:
    """The trace's messages (a fresh list; the messages themselves are shared)."""
    return list(_messages(name))


def events_only(msgs: Iterable[Mapping[str, str]]) -> list[Mapping[str, str]]:
    return [m for m in msgs if "Event" in m]


@dataclass
class Replay:
    model: CallModel
    events: list[DomainEvent] = field(default_factory=list)

    def feed(self, msgs: Iterable[Mapping[str, str]], start: float = 1000.0) -> Replay:
        """Feed messages; the fake clock advances one second per message."""
        for i, msg in enumerate(msgs):
            self.events.extend(self.model.feed(msg, start + i))
        return self

    def ended(self) -> dict[str, Call]:
        return {e.call.linkedid: e.call for e in self.events if isinstance(e, CallEnded)}

    def started(self) -> list[str]:
        return [e.call.linkedid for e in self.events if isinstance(e, CallStarted)]

    def by_call(self) -> dict[str, list[DomainEvent]]:
        out: dict[str, list[DomainEvent]] = {}
        for event in self.events:
            out.setdefault(event.call.linkedid, []).append(event)
        return out


def replay(name: str, model: CallModel | None = None, start: float = 1000.0) -> Replay:
    return Replay(model or CallModel("main")).feed(messages(name), start)


# -- facts per trace -------------------------------------------------------------------
# Each expected call: field -> value of the ended Call snapshot, plus "rings" as
# (device, result) pairs in ring order, "transfers" as (kind, from, to) and
# "ended_with". Only the fields named are checked.

QUEUE_CALL = {"direction": "inbound", "caller_withheld": False, "complete": True}

FACTS: dict[str, dict[str, dict[str, Any]]] = {
    "01-queue-answered.ami": {
        "1795735383.330": {
            **QUEUE_CALL,
            "caller_number_raw": "+3250123456",
            "caller_name": "Jan Peeters",
            "dialled": "3200",
            "queue": "support",
            "answered_by": A1,
            "outcome": "answered",
            "queue_result": "answered",
            "hung_up_by": "caller",
            "rings": [(A2, "cancelled"), (A1, "answered")],
            "members": ["Bart", "Anna"],
            "ended_with": A1,
        }
    },
    "02-queue-abandoned.ami": {
        "1795735401.336": {
            **QUEUE_CALL,
            "caller_number_raw": "050123456",
            "caller_name": "Marie Dubois",
            "queue": "support",
            "answered_by": None,
            "outcome": "abandoned",
            "queue_result": "abandoned",
            "hung_up_by": "caller",
            "rings": [(A2, "cancelled"), (A1, "cancelled")],
        }
    },
    "03-ring-no-answer-then-answered.ami": {
        "1795735412.342": {
            **QUEUE_CALL,
            "caller_number_raw": "+3293456789",
            "caller_name": "Bakkerij Janssens",
            "dialled": "3300",
            "queue": "sales",
            "answered_by": A2,
            "outcome": "answered",
            "hung_up_by": "operator",
            "rings": [(A1, "no_answer"), (A2, "answered")],
        }
    },
    "04-direct-call.ami": {
        "1795735433.348": {
            **QUEUE_CALL,
            "caller_number_raw": "0470123456",
            "caller_name": "Luc Claes",
            "dialled": "1001",
            "queue": None,
            "answered_by": A1,
            "outcome": "answered",
            "hung_up_by": "caller",
            "rings": [(A1, "answered")],
        }
    },
    "05-blind-transfer.ami": {
        "1795735449.352": {
            **QUEUE_CALL,
            "caller_number_raw": "+3250987654",
            "caller_name": "Sophie Maes",
            "queue": "support",
            "answered_by": A1,
            "outcome": "transferred",
            "hung_up_by": "caller",
            "rings": [(A2, "cancelled"), (A1, "answered"), (L2001, "answered")],
            "transfers": [("blind", A1, L2001)],
            "ended_with": L2001,
        }
    },
    "05-blind-transfer-redirect.ami": {
        "1795735475.360": {
            **QUEUE_CALL,
            "caller_number_raw": "+3250987654",
            "queue": "support",
            "answered_by": A1,
            "outcome": "transferred",
            "hung_up_by": "caller",
            "rings": [(A2, "cancelled"), (A1, "answered"), (L2001, "answered")],
            "transfers": [("redirect", A1, L2001)],
            "ended_with": L2001,
        }
    },
    "06-attended-transfer.ami": {
        "1795735502.368": {
            **QUEUE_CALL,
            "caller_number_raw": "056123456",
            "caller_name": "Thomas Wouters",
            "queue": "support",
            "answered_by": A1,
            "outcome": "transferred",
            "hung_up_by": "caller",
            "rings": [(A2, "cancelled"), (A1, "answered"), (L2001, "answered")],
            "transfers": [("attended", A1, L2001)],
            "ended_with": L2001,
        }
    },
    "07-callback-originate-answered.ami": {
        "1795735540.378": {
            "direction": "outbound",
            "agreement_id": "42",
            "originate_action_id": "callback-42",
            "dialled": "0470123456",
            "caller_number_raw": "0470123456",
            "caller_name": "Terugbelverzoek 42",
            "answered_by": A1,
            "outcome": "answered",
            "hung_up_by": "caller",
            "rings": [(A1, "answered"), ("Local/0470123456@pstn-out", "answered")],
            "ended_with": A1,
        }
    },
    "07-callback-originate-answered-channelid.ami": {
        "cti-callback-48": {
            "direction": "outbound",
            "agreement_id": "48",
            "originate_action_id": "callback-48",
            "answered_by": A1,
            "outcome": "answered",
            "rings": [(A1, "answered"), ("Local/0470123456@pstn-out", "answered")],
        }
    },
    "08-callback-originate-customer-busy.ami": {
        "1795735598.392": {
            "direction": "outbound",
            "agreement_id": "43",
            "originate_action_id": "callback-cust-busy",
            "dialled": "0478554433",
            "answered_by": None,
            "outcome": "failed",
            "hung_up_by": "system",
            "rings": [(A1, "answered"), ("Local/0478554433@pstn-out", "busy")],
        }
    },
    "08-callback-originate-failed-busy.ami": {
        "1795735559.382": {
            "direction": "outbound",
            "agreement_id": "43",
            "originate_action_id": "callback-busy",
            "dialled": "0478554433",
            "outcome": "failed",
            "rings": [("Local/0478554433@pstn-out", "busy")],
        }
    },
    "08-callback-originate-failed-busy-channelid.ami": {
        "cti-callback-49": {
            "direction": "outbound",
            "agreement_id": "49",
            "originate_action_id": "callback-busy-49",
            "outcome": "failed",
            "rings": [("Local/0478554433@pstn-out", "busy")],
        }
    },
    "08-callback-originate-failed-congestion.ami": {
        "1795735578.386": {
            "direction": "outbound",
            "outcome": "failed",
            "originate_action_id": "callback-congestion",
            "rings": [("Local/093334455@pstn-out", "unavailable")],
        }
    },
    "08-callback-originate-failed-noanswer.ami": {
        "1795735563.384": {
            "direction": "outbound",
            "outcome": "failed",
            "hangup_cause": 19,
            "rings": [("Local/025123456@pstn-out", "no_answer")],
        }
    },
    "08-callback-originate-failed-invalid.ami": {
        # (a) PJSIP/...@trunk never made a channel: no call at all. (b) ends before its
        # OriginateResponse arrives, so the action id cannot be attached.
        "1795735582.388": {
            "direction": "outbound",
            "agreement_id": "45",
            "outcome": "failed",
            "rings": [],
        }
    },
    "08-callback-originate-failed-operator-noanswer.ami": {
        "1795735586.390": {
            "direction": "outbound",
            "agreement_id": "43",
            "originate_action_id": "callback-op-noanswer",
            "dialled": "0470123456",
            "answered_by": None,
            "outcome": "failed",
            "hung_up_by": "system",
            "rings": [(A1, "no_answer")],
        }
    },
    "09-queue-status.ami": {
        "1795735605.396": {
            **QUEUE_CALL,
            "caller_number_raw": "+32478123456",
            "caller_name": "Annelies Goossens",
            "answered_by": A1,
            "outcome": "answered",
            "hung_up_by": "caller",
        },
        "1795735608.400": {
            **QUEUE_CALL,
            "caller_number_raw": "011223344",
            "caller_name": "Kris Willems",
            "queue": "support",
            "answered_by": None,
            "outcome": "abandoned",
            "queue_result": "abandoned",
            "hung_up_by": "caller",
            "rings": [],
        },
    },
    "10-agent-pause.ami": {},
    "11-restart-reconnect.ami": {},
    "11-restart-shutdown.ami": {
        "1795735774.574": {
            **QUEUE_CALL,
            "caller_number_raw": "+3250223344",
            "caller_name": "Els Jacobs",
            "answered_by": A1,
            "outcome": "answered",
            "hung_up_by": "system",
        },
        "1795735776.580": {
            **QUEUE_CALL,
            "caller_number_raw": "0485667788",
            "caller_name": "Wim Peeters",
            "answered_by": None,
            "outcome": "abandoned",
            "hung_up_by": "system",
            "rings": [(A2, "no_answer")],
        },
    },
    "14-login-failure.ami": {},
    "14-login-md5-challenge.ami": {},
    "14-login-security-events.ami": {},
    "pjsip/01-queue-answered.ami": {
        "1795737567.27": {
            **QUEUE_CALL,
            "caller_number_raw": "050123456",
            "caller_name": "Jan Peeters",
            "dialled": "3200",
            "queue": "support-sip",
            "answered_by": P1,
            "outcome": "answered",
            "hung_up_by": "caller",
            "rings": [(P2, "cancelled"), (P1, "answered")],
            "channels": ["PJSIP/1002-0000001c", "PJSIP/1001-0000001d"],
        }
    },
    "pjsip/02-queue-busy-then-answered.ami": {
        "1795737590.30": {
            **QUEUE_CALL,
            "caller_number_raw": "+3250987654",
            "answered_by": P2,
            "outcome": "answered",
            "hung_up_by": "operator",
            # 1001's 486: the queue says NOANSWER, the leg's Hangup says 17 (busy)
            "rings": [(P2, "answered"), (P1, "busy")],
        }
    },
    "pjsip/03-queue-abandoned.ami": {
        "1795737608.33": {
            **QUEUE_CALL,
            "caller_number_raw": "0470123456",
            "answered_by": None,
            "outcome": "abandoned",
            "queue_result": "abandoned",
            "hung_up_by": "caller",
            "rings": [(P2, "no_answer"), (P1, "no_answer"), (P2, "cancelled"), (P1, "cancelled")],
        }
    },
    "pjsip/04-direct-call.ami": {
        "1795737629.38": {
            **QUEUE_CALL,
            "caller_number_raw": "003293456789",
            "caller_name": "Zoë Declercq",
            "dialled": "1002",
            "queue": None,
            "answered_by": P2,
            "outcome": "answered",
            "hung_up_by": "caller",
            "rings": [(P2, "answered")],
        }
    },
    "pjsip/04b-direct-call-no-answer.ami": {
        "1795737814.49": {
            **QUEUE_CALL,
            "dialled": "1002",
            "answered_by": None,
            "outcome": "missed",
            "hung_up_by": "system",
            "rings": [(P2, "no_answer")],
        }
    },
    "pjsip/05-callback-originate-answered.ami": {
        "1795737653.40": {
            "direction": "outbound",
            "agreement_id": "42",
            "originate_action_id": "callback-42",
            "dialled": "050123456",
            "answered_by": P1,
            "outcome": "answered",
            "hung_up_by": "caller",
            "rings": [(P1, "answered"), ("PJSIP/pstn", "answered")],
        }
    },
    "pjsip/06-callback-originate-customer-busy.ami": {
        "1795737677.42": {
            "direction": "outbound",
            "agreement_id": "42",
            "answered_by": None,
            "outcome": "failed",
            "rings": [(P1, "answered"), ("PJSIP/pstn", "busy")],
        }
    },
    "pjsip/06b-callback-originate-operator-no-answer.ami": {
        "1795737843.51": {
            "direction": "outbound",
            "agreement_id": "42",
            "originate_action_id": "callback-42",
            "answered_by": None,
            "outcome": "failed",
            "hangup_cause": 19,
            "rings": [(P1, "no_answer")],
        }
    },
    "pjsip/07-operator-unreachable.ami": {
        "1795737697.44": {
            **QUEUE_CALL,
            "answered_by": P1,
            "outcome": "answered",
            "hung_up_by": "caller",
            "rings": [(P1, "answered")],
        }
    },
    "pjsip/07b-operator-gone-before-qualify.ami": {
        "1795737718.46": {
            **QUEUE_CALL,
            "caller_number_raw": "0470123456",
            "answered_by": P1,
            "outcome": "answered",
            "hung_up_by": "caller",
            "rings": [(P2, "cancelled"), (P1, "answered")],
        }
    },
}

# 13-hostile-callerid: every caller answered in join order, alternating 1001/1002.
HOSTILE = [
    ("1795735733.534", "+3250123456", "<script>alert(1)</script>", False, A1),
    ("1795735733.536", "050654321", 'Jan "de Baas" O\'Brien & Zonen; <b>bv</b>', False, A2),
    ("1795735733.538", "+3256789012", None, False, A1),  # the 216-character name
    ("1795735734.540", "0032470654321", "Zoë Müller", False, A2),
    ("1795735734.542", "+32092345678", "Łódź \u2013 Ślęża ☎ 日本", False, A1),  # en dash
    ("1795735734.544", "0475112233", "Event: Hangup", False, A2),
    ("1795735734.546", "anonymous", "Anonymous", True, A1),
    ("1795735735.548", "<unknown>", None, True, A2),
]
LONG_NAME_START = "Vereniging van Mede-Eigenaars"


# -- the burst ---------------------------------------------------------------------------

BURST_TABLE = """
01 1795735664.402 answered 1002 | 02 1795735664.408 answered 1001
03 1795735664.410 answered 1002 | 04 1795735665.412 answered 1001
05 1795735665.414 answered 1001 | 06 1795735665.416 answered 1002
07 1795735665.418 answered 1001 | 08 1795735665.420 abandoned -
09 1795735665.422 answered 1002 | 10 1795735665.424 answered 1001
11 1795735665.426 answered 1002 | 12 1795735665.430 abandoned -
13 1795735665.432 answered 1001 | 14 1795735666.434 answered 1002
15 1795735666.436 answered 1001 | 16 1795735666.438 abandoned -
17 1795735666.440 answered 1002 | 18 1795735666.442 answered 1001
19 1795735666.444 answered 1002 | 20 1795735666.446 abandoned -
21 1795735666.448 answered 1001 | 22 1795735666.450 answered 1002
23 1795735666.452 answered 1001 | 24 1795735667.454 abandoned -
25 1795735667.456 answered 1002 | 26 1795735667.458 answered 1001
27 1795735667.460 answered 1002 | 28 1795735667.462 abandoned -
29 1795735667.464 answered 1001 | 30 1795735667.466 answered 1002
31 1795735667.468 timeout -      | 32 1795735667.470 abandoned -
33 1795735668.472 timeout -      | 34 1795735668.474 timeout -
35 1795735668.476 timeout -      | 36 1795735668.478 abandoned -
37 1795735668.480 timeout -      | 38 1795735668.482 timeout -
39 1795735668.484 timeout -      | 40 1795735668.486 abandoned -
"""


def burst_table() -> dict[str, tuple[int, str, str | None]]:
    """Linkedid -> (burst number, abandoned|answered|timeout, answering device)."""
    out: dict[str, tuple[int, str, str | None]] = {}
    for half in BURST_TABLE.replace("|", "\n").split("\n"):
        parts = half.split()
        if parts:
            number, lid, what, who = parts
            out[lid] = (int(number), what, None if who == "-" else f"Local/{who}@agents")
    return out


# timestamped/12-burst: (answered by Anna, by Bart, abandoned, timeouts); Burst 31 was
# answered at the timeout instant and counts as answered.
TIMESTAMPED_BURST_COUNTS = (13, 12, 9, 6)

# timestamped/: README "durations per call" table, seconds to the millisecond.
# (file, linkedid, wait, talk, [(ring device, seconds, result)], [(leg device, seconds)])
DURATIONS: list[tuple[str, str, float | None, float | None, list[Any], list[Any]]] = [
    (
        "01-queue-answered",
        "1795736303.44",
        2.003,
        12.502,
        [(A2, 2.003, "cancelled"), (A1, 2.002, "answered")],
        [(A1, 12.503)],
    ),
    (
        "02-queue-abandoned",
        "1795736321.50",
        6.508,
        None,
        [(A2, 6.506, "cancelled"), (A1, 6.506, "cancelled")],
        [],
    ),
    (
        "03-ring-no-answer-then-answered",
        "1795736332.56",
        9.012,
        8.509,
        [(A1, 6.007, "no_answer"), (A2, 2.003, "answered")],
        [(A2, 8.508)],
    ),
    ("04-direct-call", "1795736353.62", None, 9.024, [(A1, 3.003, "answered")], [(A1, 9.024)]),
    (
        "05-blind-transfer",
        "1795736369.66",
        2.005,
        20.508,
        [(A2, 2.003, "cancelled"), (A1, 2.003, "answered"), (L2001, 3.003, "answered")],
        [(A1, 3.003), (L2001, 14.503)],
    ),
    (
        "06-attended-transfer",
        "1795736395.74",
        2.004,
        32.505,
        [(A2, 2.003, "cancelled"), (A1, 2.003, "answered"), (L2001, 2.002, "answered")],
        [(A1, 16.503), (L2001, 26.996)],
    ),
    (
        "07-callback-originate-answered",
        "1795736434.84",
        None,
        10.503,
        [(A1, 2.002, "answered"), ("Local/0470123456@pstn-out", 3.001, "answered")],
        [(A1, 13.504)],
    ),
    (
        "08-callback-originate-customer-busy",
        "1795736453.88",
        None,
        None,
        [(A1, 2.003, "answered"), ("Local/0478554433@pstn-out", 0.000, "busy")],
        [(A1, 0.001)],
    ),
]

# timestamped/12-burst, a sample of rows: linkedid -> (wait, talk or None)
BURST_DURATIONS = {
    "1795736460.92": (1.002, 3.506),
    "1795736460.102": (7.009, 1.495),
    "1795736461.110": (12.513, None),
    "1795736461.130": (31.034, 3.506),
    "1795736463.158": (60.063, 3.506),
    "1795736463.162": (60.060, None),
    "1795736463.170": (59.061, None),
    "1795736464.176": (12.510, None),
}


#: Every recorded trace, the timestamped ones last.
ALL_TRACES = sorted(
    str(p.relative_to(TRACES)) for p in TRACES.rglob("*.ami") if "timestamped" not in p.parts
) + sorted(str(p.relative_to(TRACES)) for p in (TRACES / "timestamped").glob("*.ami"))


def check_event_order(run: Replay) -> None:
    """Per call: one CallStarted first, one CallEnded last, rings start before they end."""
    for linkedid, events in run.by_call().items():
        kinds = [type(e) for e in events]
        assert kinds.count(CallStarted) == 1, linkedid
        assert kinds.count(CallEnded) <= 1, linkedid
        assert kinds[0] is CallStarted, linkedid
        if CallEnded in kinds:
            assert kinds[-1] is CallEnded, linkedid
        ringing: set[str] = set()
        for event in events:
            if isinstance(event, OperatorRinging):
                assert event.ring.uniqueid not in ringing
                ringing.add(event.ring.uniqueid)
                assert event.ring.ended_at is None
            elif isinstance(event, RingEnded):
                assert event.ring.uniqueid in ringing, "RingEnded without OperatorRinging"
                ringing.discard(event.ring.uniqueid)
                assert event.ring.result is not None
            elif isinstance(event, CallAnswered):
                assert event.call.answered_at is not None
                assert event.segment in event.call.segments
            elif isinstance(event, CallTransferred):
                assert event.transfer in event.call.transfers
        if CallEnded in kinds:
            assert not ringing, f"{linkedid}: rings left open at the end"
