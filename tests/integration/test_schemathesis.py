"""schemathesis against the live daemon (issue 13): the whole daemon on the simulated
PBX over real TCP and SQLite, its own ``GET /api/openapi.json`` loaded, and every
operation in it asked with generated requests as four callers: no token, an operator,
a supervisor and an admin. Each answer is checked by schemathesis: no 5xx from a bug
(``not_a_server_error``), a status the document lists for the operation, in the
content type it lists, with its headers, valid against its schema.

Generated data is positive (what the document allows) and negative (what it does not:
those must be refused with a listed 4xx, never a 500). Bounded for CI: a handful of
examples per operation and caller, no shrinking (a failure is reported as generated),
the whole file well under two minutes. The generation runs in a thread (schemathesis
speaks ``requests``, blocking), the daemon on the test's reactor.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode  # noqa: E402

from cti_bridge.app.daemon import Daemon  # noqa: E402
from cti_bridge.sim import SimulatedPBX  # noqa: E402
from tests.integration.integration_support import (  # noqa: E402
    PASSWORD,
    daemon_config,
    eventually,
    http,
    in_thread,
    login,
    prepared_store,
    sleep,
    started_daemon,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ROLES = {"none": None, "operator": "anna", "supervisor": "sofie", "admin": "alex"}
EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 4}
#: Sent last for each caller: it ends the caller's token.
LAST = ("POST", "/api/logout")


class Live:
    def __init__(self, daemon: Daemon, sim: SimulatedPBX, ids: dict[str, str]) -> None:
        self.daemon, self.sim = daemon, sim
        #: Path parameters of things that exist: the generated ones rarely do.
        self.ids = ids


@pytest_twisted.async_yield_fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    sim = SimulatedPBX(reactor, seed=5, speed=4.0, operators=[("PJSIP/1001", "Anna")])
    port = sim.listen(0)
    url, store = prepared_store(tmp_path)
    store.accounts.add_operator(
        "anna", role="operator", password=PASSWORD, name="Anna", devices=["PJSIP/1001"]
    )
    store.accounts.add_operator("sofie", role="supervisor", password=PASSWORD)
    store.accounts.add_operator("alex", role="admin", password=PASSWORD)
    customer = store.customers.add_customer("Jan Peeters", numbers=["0470123456"])
    agreement = store.agreements.add_agreement("documentation", customer_id=customer)
    config = daemon_config(url, "127.0.0.1", port, sim.username, sim.secret)
    daemon = await started_daemon(config)
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 10, "PBX link up")
    # One real call, so that a call's answers (and a PATCH of one) are asked too.
    sim.place_call(
        "queue_answered",
        caller=("0470123456", "Jan Peeters"),
        operator="PJSIP/1001",
        ring=0.5,
        talk=1.0,
    )
    token = await login(daemon, "sofie")

    async def recorded() -> Any:
        status, body = await http("GET", daemon.url + "api/calls?limit=1", token=token)
        return (
            status == 200
            and body["calls"]
            and body["calls"][0]["ended_at"]
            and body["calls"][0]["id"]
        )

    call = None
    for _ in range(200):
        call = await recorded()
        if call:
            break
        await sleep(0.05)
    assert call, "the simulated call was not recorded"
    ids = {
        "call_id": str(call),
        "agreement_id": str(agreement),
        "customer_id": str(customer),
        "operator": "anna",
    }
    yield Live(daemon, sim, ids)
    await daemon.stop()
    await sim.stop()
    store.close()


def operations(document: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(document)
    found = [result.ok() for result in schema.get_all_operations()]
    return sorted(found, key=lambda op: (op.method.upper(), op.path) == LAST)


def run_operation(
    operation: Any,
    base_url: str,
    token: str | None,
    mode: GenerationMode,
    path: dict[str, str] | None = None,
) -> list[str]:
    """Generated requests for one operation as one caller (``path``: fixed path
    parameters); the failures, as text."""
    failures: list[str] = []
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path))
    def ask(case: Any) -> None:
        if token is not None:
            case.headers = {**(case.headers or {}), **headers}
        try:
            case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)
        except (Exception, BaseExceptionGroup) as failure:  # noted; then the next request
            text = str(failure).strip().splitlines()
            failures.append(f"{operation.method.upper()} {operation.path}: {' | '.join(text[:8])}")

    try:
        ask()
    except Unsatisfiable:  # negative data for an operation that takes none (/healthz)
        assert mode is GenerationMode.NEGATIVE, operation.path
    return failures


def run_everything(
    document: dict[str, Any], base_url: str, tokens: dict[str, str | None], ids: dict[str, str]
) -> tuple[list[str], int]:
    failures: list[str] = []
    asked = 0
    for role, token in tokens.items():
        for operation in operations(document):
            for mode in EXAMPLES:
                found = run_operation(operation, base_url, token, mode)
                failures += [f"[{role}, {mode.value}] {f}" for f in found]
                asked += 1
            fixed = {name: value for name, value in ids.items() if f"{{{name}}}" in operation.path}
            if fixed:  # the same with the ids of things that exist
                found = run_operation(operation, base_url, token, GenerationMode.POSITIVE, fixed)
                failures += [f"[{role}, existing] {f}" for f in found]
    return failures, asked


@pytest_twisted.ensureDeferred
async def test_every_operation_for_every_caller_conforms(live: Live) -> None:
    base = live.daemon.url.rstrip("/")
    status, document = await http("GET", base + "/api/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    tokens = {
        role: (None if who is None else await login(live.daemon, who))
        for role, who in ROLES.items()
    }
    started = time.monotonic()
    run: Callable[[], tuple[list[str], int]] = lambda: run_everything(  # noqa: E731
        document, base, tokens, live.ids
    )
    failures, asked = await in_thread(run)
    took = time.monotonic() - started
    assert asked >= 4 * 2 * 25  # every caller, both modes, every operation
    unique = sorted(set(failures))
    assert unique == [], f"{len(unique)} failing requests in {took:.0f} s:\n" + "\n".join(
        unique[:40]
    )
    assert took < 110, f"schemathesis took {took:.0f} s"
