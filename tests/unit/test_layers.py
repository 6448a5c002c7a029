"""The layering, checked on the source: what the pure parts may not import.

Every module's imports are read from its syntax tree - module-level, function-level and
``TYPE_CHECKING`` ones alike, relative ones resolved, ``importlib.import_module("x")``
and ``__import__("x")`` with a literal name too - and held to ``RULES``. To add a rule
(a room that must stay pure, a layer that must not see another), add a ``Rule`` line;
``ACYCLIC`` lists the packages whose modules must not import each other in a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import cti_bridge
from cti_bridge.app.daemon import FEATURES

SRC = Path(cti_bridge.__file__).parent

#: Frameworks and drivers: I/O, reactors, databases, the web.
FRAMEWORKS = ("twisted", "sqlalchemy", "klein", "txredisapi", "redis", "psycopg", "wsproto")
#: The adapters and the wiring: the pure parts are used by them, never the other way.
OUTER = ("cti_bridge.store", "cti_bridge.web", "cti_bridge.app", "cti_bridge.bus")
#: Pure modules inside an outer package, which pure code may import: the bus's topic
#: names (``cti_bridge.bus`` itself loads no transport until one is asked for).
PURE_OUTER = ("cti_bridge.bus.topics",)


@dataclass(frozen=True)
class Rule:
    """Modules under any of ``modules`` (a module and its submodules) import nothing
    under ``forbidden``, except the modules under ``exempt``."""

    modules: tuple[str, ...]
    forbidden: tuple[str, ...]
    why: str
    exempt: tuple[str, ...] = ()
    #: Modules under ``forbidden`` that may be imported all the same (pure ones).
    allowed: tuple[str, ...] = ()

    def covers(self, module: str) -> bool:
        return under(module, self.modules) and not under(module, self.exempt)


RULES: tuple[Rule, ...] = (
    Rule(
        ("cti_bridge.calls",),
        FRAMEWORKS + OUTER,
        "the call model is pure: AMI events in, domain events out",
    ),
    Rule(
        ("cti_bridge.calls",),
        ("structlog",),
        "the model decides and counts; only its pipeline (the AMI listener) logs",
        exempt=("cti_bridge.calls.pipeline",),
    ),
    Rule(
        ("cti_bridge.ami.parser", "cti_bridge.ami.listener"),
        FRAMEWORKS + OUTER,
        "the wire format and the listener contract are pure: bytes in, messages out",
    ),
    Rule(
        ("cti_bridge.pop.core",),
        FRAMEWORKS + OUTER,
        "who gets which pop is a pure decision",
        allowed=PURE_OUTER,
    ),
    Rule(
        (
            "cti_bridge.dialer.policy",
            "cti_bridge.dialer.attempt",
            "cti_bridge.dialer.request",
            "cti_bridge.dialer.ports",
        ),
        FRAMEWORKS + OUTER,
        "when a callback may be dialled, who is rung, what its Originate says and what an"
        " attempt's outcome is are pure decisions; the dialer's ports are plain interfaces",
    ),
    Rule(
        ("cti_bridge.queues.members", "cti_bridge.queues.operators", "cti_bridge.queues.callers"),
        FRAMEWORKS + OUTER,
        "who is free to take a call, and who waits for one, is pure state: AMI messages in,"
        " states out",
    ),
    Rule(
        ("cti_bridge.queues.kpis", "cti_bridge.queues.kpi_ports"),
        FRAMEWORKS + OUTER,
        "what each KPI is, and what it needs of storage, is pure: records in, figures out",
    ),
    Rule(
        ("cti_bridge.missed.rules",),
        FRAMEWORKS + OUTER,
        "which ended call owes a callback, and which one keeps it, is a pure decision",
    ),
    Rule(
        (
            *PURE_OUTER,
            "cti_bridge.vocabulary",
            "cti_bridge.backoff",
            "cti_bridge.callbacks",
            "cti_bridge.lease",
        ),
        FRAMEWORKS + OUTER,
        "topic names, the domain's words, the back-off policy, the callback values the"
        " store and the dialer share and the lease keeper's decisions are plain values",
        allowed=PURE_OUTER,
    ),
    Rule(
        (
            "cti_bridge.agi",
            "cti_bridge.pop",
            "cti_bridge.console",
            "cti_bridge.missed",
            "cti_bridge.dialer",
        ),
        ("cti_bridge.store.models", "sqlalchemy"),
        "a room reads storage through its port (ports.py), never the ORM or SQL",
    ),
)

#: Packages whose modules import each other without a cycle (a cycle hides a layer).
ACYCLIC: tuple[str, ...] = ("cti_bridge.calls",)

#: The features' rooms: the packages ``app/daemon.py`` installs, each with ``install(node)``.
#: Read from the daemon, so a new room is held to the room rules without a line here.
ROOMS = tuple(f"cti_bridge.{name}" for name in FEATURES)
#: What a room may take from the wiring: the node it is handed and the config it holds.
NODE = ("cti_bridge.app.node", "cti_bridge.app.config")


def _rooms_but(room: str) -> tuple[str, ...]:
    return tuple(r for r in ROOMS if r != room)


#: The arrows of docs/architecture.md, read the other way: what each box may NOT import.
#: An arrow the picture draws is an ``allowed`` entry or simply not forbidden; every
#: import against an arrow fails here.
ARROWS: tuple[Rule, ...] = (
    Rule(
        ("cti_bridge.ami",),
        (
            "cti_bridge.calls",
            "cti_bridge.store",
            "cti_bridge.web",
            "cti_bridge.app",
            "cti_bridge.bus",
            "cti_bridge.sim",
            *ROOMS,
        ),
        "the AMI link knows its listeners only by the contract in ami/listener.py",
    ),
    Rule(
        ("cti_bridge.calls",),
        ("cti_bridge.sim", "cti_bridge.testing", *ROOMS),
        "the model knows no consumer of its domain events",
    ),
    Rule(
        ("cti_bridge.store",),
        (
            "cti_bridge.app",
            "cti_bridge.web",
            "cti_bridge.bus",
            "cti_bridge.ami",
            "cti_bridge.sim",
            "cti_bridge.testing",
            *ROOMS,
        ),
        "storage implements the rooms' ports; it never knows the rooms, the web or the wiring",
    ),
    Rule(
        ("cti_bridge.bus",),
        (
            "cti_bridge.store",
            "cti_bridge.web",
            "cti_bridge.app",
            "cti_bridge.calls",
            "cti_bridge.ami",
            "cti_bridge.sim",
            *ROOMS,
        ),
        "the bus carries JSON between nodes; it knows no sender or receiver",
    ),
    Rule(
        ("cti_bridge.web",),
        ("cti_bridge.app", "cti_bridge.calls", "cti_bridge.ami", "cti_bridge.sim", *ROOMS),
        "the web is plumbing: the rooms add their routes to it, it knows none of them",
    ),
    Rule(
        ("cti_bridge.sim",),
        (
            "cti_bridge.calls",
            "cti_bridge.store",
            "cti_bridge.web",
            "cti_bridge.app",
            "cti_bridge.bus",
            *ROOMS,
        ),
        "the demo PBX speaks AMI like Asterisk and knows nothing of cti-bridge's insides",
    ),
    *(
        Rule(
            (room,),
            ("cti_bridge.app", "cti_bridge.sim", "cti_bridge.testing", *_rooms_but(room)),
            "a room is handed the node and talks to the others through it, the bus or the"
            " store, not by importing them",
            # The drawn arrows between rooms: the console's customer view and the AGI
            # lookup's contract dates are the pop's context (pop/context.py); the dialer's
            # pure calendar (dialer/policy.py: a deadline in business hours, the queues
            # board's OperatorState).
            allowed=(*NODE, "cti_bridge.pop.context", "cti_bridge.dialer.policy"),
        )
        for room in ROOMS
    ),
)


def under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# -- reading imports --------------------------------------------------------------------


def module_name(path: Path, root: Path = SRC) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_statements(
    source: str, module: str, *, is_package: bool = False
) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names taken from it) for every import in ``source``, wherever it is
    written; relative imports are resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target, tuple(a.name for a in node.names if a.name != "*")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            arg = node.args[0]
            if (
                name in {"import_module", "__import__"}
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
            ):
                yield node.lineno, arg.value, ()


def imports(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, imported module): ``from a.b import c`` gives ``a.b`` and ``a.b.c`` (``c``
    may be a module)."""
    for line, target, names in import_statements(source, module, is_package=is_package):
        yield line, target
        for name in names:
            yield line, f"{target}.{name}"


def violations(source: str, module: str, rules: Iterable[Rule], **kw: bool) -> list[str]:
    found = []
    for rule in rules:
        if not rule.covers(module):
            continue
        for line, imported in imports(source, module, **kw):
            if under(imported, rule.forbidden) and not under(imported, rule.allowed):
                found.append(f"{module}:{line} imports {imported} ({rule.why})")
    return found


def source_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


# -- the rules hold -------------------------------------------------------------------------

MODULES = source_modules()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if any(r.covers(m) for r in RULES)))
def test_pure_modules_import_no_framework_and_no_outer_layer(module: str) -> None:
    path = MODULES[module]
    kw = {"is_package": path.name == "__init__.py"}
    assert violations(path.read_text(), module, RULES, **kw) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if any(r.covers(m) for r in ARROWS)))
def test_no_import_runs_against_the_architectures_arrows(module: str) -> None:
    path = MODULES[module]
    kw = {"is_package": path.name == "__init__.py"}
    assert violations(path.read_text(), module, ARROWS, **kw) == []


def test_the_rooms_are_packages_with_an_install() -> None:
    for room in ROOMS:
        assert room in MODULES, f"{room}: named in FEATURES but not a package"
        assert MODULES[room].name == "__init__.py", f"{room} is a module, not a room"


@pytest.mark.parametrize("rule", RULES + ARROWS, ids=lambda r: f"{r.modules[0]}-{r.forbidden[0]}")
def test_every_rule_covers_real_modules(rule: Rule) -> None:
    for prefix in rule.modules + rule.exempt:
        assert prefix in MODULES, f"no module {prefix}: a rule for nothing always passes"


def internal_graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of ``package`` it imports. ``from a.b import c`` is an edge to
    ``a.b.c`` when that is a module, else to ``a.b``; the parent packages that Python
    initialises on the way are not edges (else every package would cycle through its
    ``__init__``)."""
    members = {m for m in MODULES if under(m, (package,))}
    graph: dict[str, set[str]] = {}
    for module in sorted(members):
        path = MODULES[module]
        targets: set[str] = set()
        statements = import_statements(
            path.read_text(), module, is_package=path.name == "__init__.py"
        )
        for _, target, names in statements:
            submodules = {f"{target}.{n}" for n in names} & members
            targets |= submodules
            if len(submodules) < len(names) or not names:  # something from the module
                targets |= {target} & members
        graph[module] = targets - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


@pytest.mark.parametrize("package", ACYCLIC)
def test_no_import_cycle_inside(package: str) -> None:
    assert find_cycle(internal_graph(package)) == []


# -- the checks can fail ---------------------------------------------------------------------

FORBIDDEN_SOURCE = """
import os
import twisted.internet.reactor
from typing import TYPE_CHECKING
from cti_bridge.calls.events import Call
from cti_bridge import store
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

def later():
    from ..web import api
    from . import state
    import importlib
    return importlib.import_module("redis.asyncio"), __import__("klein")
"""


def test_the_checker_flags_forbidden_imports_wherever_they_are() -> None:
    found = violations(FORBIDDEN_SOURCE, "cti_bridge.calls.fake", RULES)
    assert [f.split(" (")[0] for f in found] == [
        "cti_bridge.calls.fake:3 imports twisted.internet.reactor",
        "cti_bridge.calls.fake:6 imports cti_bridge.store",
        "cti_bridge.calls.fake:8 imports sqlalchemy.orm",
        "cti_bridge.calls.fake:8 imports sqlalchemy.orm.Session",
        "cti_bridge.calls.fake:11 imports cti_bridge.web",
        "cti_bridge.calls.fake:11 imports cti_bridge.web.api",
        "cti_bridge.calls.fake:14 imports redis.asyncio",
        "cti_bridge.calls.fake:14 imports klein",
    ]
    assert violations(FORBIDDEN_SOURCE, "cti_bridge.app.fake", RULES) == []  # not covered
    assert violations("import structlog\n", "cti_bridge.calls.live", RULES) != []
    assert violations("import structlog\n", "cti_bridge.calls.pipeline", RULES) == []


def test_relative_imports_resolve_from_a_module_and_from_a_package() -> None:
    assert list(imports("from .x import y\n", "a.b.c")) == [(1, "a.b.x"), (1, "a.b.x.y")]
    assert list(imports("from .x import y\n", "a.b", is_package=True)) == [
        (1, "a.b.x"),
        (1, "a.b.x.y"),
    ]
    assert list(imports("from .. import z\n", "a.b.c")) == [(1, "a"), (1, "a.z")]


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) == []


def test_the_arrows_refuse_a_room_importing_another_but_not_the_drawn_one() -> None:
    source = "from cti_bridge.pop.service import PopService\nfrom cti_bridge.pop.context import x\n"
    found = violations(source, "cti_bridge.console.service", ARROWS)
    assert [v.split(" (")[0] for v in found] == [
        "cti_bridge.console.service:1 imports cti_bridge.pop.service",
        "cti_bridge.console.service:1 imports cti_bridge.pop.service.PopService",
    ]
    assert violations("from cti_bridge.app.daemon import Daemon\n", "cti_bridge.pop.x", ARROWS)
    assert not violations("from cti_bridge.app.node import Node\n", "cti_bridge.pop.x", ARROWS)
    assert violations("import cti_bridge.console\n", "cti_bridge.store.x", ARROWS)
