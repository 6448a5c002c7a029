"""``cti-bridge demo``: the whole thing on embedded defaults, in one command.

A simulated PBX (the same AMI the daemon reads from Asterisk) plays helpdesk traffic;
the daemon follows it with SQLite and the in-process bus; a few operators and customers
are seeded so the screens have something to show, and a dozen agreements
(``demo_agreements.py``) of which several callbacks are due at once: the dialer rings
their owners through the simulated PBX within the first minutes, at any hour of the
day. Everything listens on loopback only.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cti_bridge.log import configure_logging
from cti_bridge.sim import DEFAULT_CUSTOMERS, DEFAULT_OPERATORS, SimulatedPBX
from cti_bridge.sim.traffic import PAUSE_REASONS
from cti_bridge.store import Store, open_store, upgrade

from .config import Config, parse_config
from .daemon import Daemon, serve
from .demo_agreements import seed_agreements, teach_habits

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: The demo's accounts. It is a loopback-only demo: the password is printed on start.
DEMO_PASSWORD = "demo-cti-bridge"  # noqa: S105
SUPERVISOR = ("sofie", "Sofie (supervisor)")

_PROFILES = (
    ("Peeters Installaties", "nl", "expert", "premium"),
    ("Dubois & Fils", "fr", "beginner", "standard"),
    ("Claes Bouw", "nl", "intermediate", "standard"),
    ("Bakkerij Janssens", "nl", "beginner", "basic"),
)


def demo_config(database_url: str, web_port: int, pbx_port: int, secret: str) -> Config:
    return parse_config(
        {
            "web": {"host": "127.0.0.1", "port": web_port},
            "database": {"url": database_url},
            "bus": {"url": "memory://"},
            "phone": {"default_region": "BE"},
            "pbx": [
                {
                    "name": "demo",
                    "host": "127.0.0.1",
                    "port": pbx_port,
                    "username": "cti",
                    "secret": secret,
                    "auth": "md5",
                }
            ],
            "log": {"level": "warning"},
            # The reasons the simulated operators pause with, offered on the screens too.
            "queues": {"pause_reasons": list(PAUSE_REASONS)},
            # The demo dials callbacks at any hour, and retries within minutes.
            "dialer": {
                "enabled": True,
                "hours": dict.fromkeys(DAYS, "00:00-24:00"),
                "holidays": "",
                "retry_seconds": [60, 120],
                "max_attempts": 3,
                "owner_grace_seconds": 120,
                "operator_ring_seconds": 15,
            },
        },
        source="demo",
    )


def operator_username(name: str) -> str:
    return name.lower()


def seed(store: Store, now: datetime | None = None) -> dict[str, Any]:
    """Operators bound to the simulator's phones, a supervisor, customers with contracts,
    and the agreements of ``demo_agreements.BOOK`` (only the first time)."""
    now = now or datetime.now(UTC)
    today = now.date()
    accounts, customers = store.accounts, store.customers
    operators = []
    for device, name in DEFAULT_OPERATORS:
        username = operator_username(name)
        if accounts.get_operator(username) is None:
            accounts.add_operator(
                username, role="operator", password=DEMO_PASSWORD, name=name, devices=[device]
            )
        operators.append(username)
    if accounts.get_operator(SUPERVISOR[0]) is None:
        accounts.add_operator(
            SUPERVISOR[0], role="supervisor", password=DEMO_PASSWORD, name=SUPERVISOR[1]
        )
    if customers.customer_for_number(DEFAULT_CUSTOMERS[0][0]) is not None:
        return {"operators": operators, "supervisor": SUPERVISOR[0]}  # seeded before
    router = customers.add_product("RTR-200", "Router RTR-200")
    boiler = customers.add_product("HB-9", "Boiler HB-9")
    for index, (number, name) in enumerate(DEFAULT_CUSTOMERS[: len(_PROFILES) * 3]):
        if customers.customer_for_number(number) is not None:
            continue  # "050123456" and "+3250123456" are one number
        company, language, level, tier = _PROFILES[index % len(_PROFILES)]
        customer_id = customers.add_customer(
            name,
            numbers=[number],
            company=company,
            language=language,
            knowledge_level=level,
            tier=tier,
            external_ref=f"DEMO-{index + 1:03d}",
        )
        product = router if index % 2 == 0 else boiler
        customers.give_product(customer_id, product)
        # Some valid, one about to expire (upsell), one expired (out of contract).
        until = today + timedelta(days=(400, 20, -10)[index % 3])
        customers.add_contract(
            customer_id,
            valid_from=today - timedelta(days=300),
            valid_until=until,
            covered=["phone_support", "repair"] if index % 2 == 0 else ["phone_support"],
            product_id=product,
            service_level_hours=(4, 8, 24)[index % 3],
            reference=f"C-{2026}-{index + 1:04d}",
        )
    agreements = seed_agreements(store, now)
    return {"operators": operators, "supervisor": SUPERVISOR[0], "agreements": len(agreements)}


def run_demo(
    *,
    web_port: int = 8080,
    data_dir: str | None = None,
    calls_per_minute: float = 6.0,
    seed_value: int | None = None,
    reactor: Any = None,
) -> int:
    configure_logging("warning", sys.stderr)
    if reactor is None:
        from twisted.internet import reactor as default_reactor  # noqa: PLC0415

        reactor = default_reactor
    keep = data_dir is not None
    folder = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="cti-bridge-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'cti-bridge-demo.sqlite3'}"
    upgrade(url)
    store = open_store(url)
    seeded = seed(store)

    sim = SimulatedPBX(reactor, seed=seed_value)
    teach_habits(sim)
    pbx_port = sim.listen(0)
    config = demo_config(url, web_port, pbx_port, sim.secret)
    daemon = Daemon(config, reactor, store=store)

    def started(daemon: Daemon) -> None:
        sim.start_traffic(calls_per_minute=calls_per_minute)
        print(_banner(daemon.url, seeded, folder, keep), flush=True)

    try:
        return serve(daemon, reactor, started=started)
    finally:
        if not keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(folder)


def _banner(url: str, seeded: dict[str, Any], folder: Path, keep: bool) -> str:
    names = ", ".join(seeded["operators"])
    where = f"data kept in {folder}" if keep else "data in a temporary folder, removed on exit"
    return "\n".join(
        [
            "",
            "cti-bridge demo is running (simulated PBX, SQLite, in-process bus)",
            f"  operator console:    {url}",
            f"  supervisor screens:  {url}  (log in as {seeded['supervisor']})",
            f"  wallboard:           {url}wallboard  (log in as {seeded['supervisor']})",
            f"  health:              {url}healthz",
            f"  operators:           {names}",
            f"  agreements:          {_agreements_line(seeded)}",
            f"  password (all):      {DEMO_PASSWORD}",
            f"  {where}",
            "  Ctrl-C stops it.",
            "",
        ]
    )


def _agreements_line(seeded: dict[str, Any]) -> str:
    if "agreements" not in seeded:
        return "as left by the last run (the dialer goes on with the due callbacks)"
    return (
        f"{seeded['agreements']} seeded; callbacks due now are dialled within minutes "
        "(GET /api/agreements)"
    )
