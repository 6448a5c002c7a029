"""The Docker image runs cti-bridge as a non-root user (issue 13). There is no Docker
engine here, so the Dockerfile is read as Docker reads it (continuation lines joined,
comments dropped, the last stage being the image) and its final ``USER`` checked: set,
numeric, not 0, the user made in the image with that id and owning the data directory
the daemon works in. And the Asterisk image's entrypoint drops root for Asterisk."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: ``\\`` continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            name, _, args = whole.partition(" ")
            out.append((name.upper(), args.strip()))
    return out


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (name, _) in enumerate(steps) if name == "FROM"]
    assert starts, "no FROM"
    return steps[starts[-1] :]


def test_the_parser_reads_continuations_and_stages() -> None:
    text = "FROM a AS build\nUSER root\n# a comment\nFROM b\n"
    text += "RUN x \\\n    # inside\n    && y\nUSER 5:5\n"
    steps = instructions(text)
    assert final_stage(steps) == [("FROM", "b"), ("RUN", "x && y"), ("USER", "5:5")]


def test_the_cti_bridge_image_runs_as_a_numeric_non_root_user() -> None:
    stage = final_stage(instructions((DOCKER / "Dockerfile").read_text()))
    users = [args for name, args in stage if name == "USER"]
    assert users, "the final stage never sets USER: the daemon would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: not a numeric non-root id"
    assert not group or (group.isdigit() and int(group) != 0)
    # Nothing after the last USER runs as another user or switches back.
    last = max(i for i, (name, _) in enumerate(stage) if name == "USER")
    assert all(name != "USER" for name, _ in stage[last + 1 :])
    # The user exists in the image with that id, its home is the data directory.
    runs = " ".join(args for name, args in stage[:last] if name == "RUN")
    useradd = re.search(r"useradd ([^&;]+)", runs)
    assert useradd is not None, "no useradd before USER"
    words = shlex.split(useradd.group(1))
    assert words[words.index("--uid") + 1] == user
    home = words[words.index("--home-dir") + 1]
    assert "--create-home" in words  # owned by the user, not root
    workdirs = [args for name, args in stage[last:] if name == "WORKDIR"]
    assert workdirs and workdirs[-1] == home, "the daemon works in its own data directory"
    # The entry point is the daemon itself, not a shell that could run as anyone.
    entry = [args for name, args in stage if name == "ENTRYPOINT"]
    assert entry and entry[-1] == '["cti-bridge"]'


def _service(text: str, name: str) -> str:
    """One service's block of compose.yaml (up to the next service or ``volumes:``)."""
    body = text.split(f"\n  {name}:\n", 1)[1]
    return re.split(r"\n  [a-z-]+:\n|\nvolumes:\n", body, maxsplit=1)[0]


@pytest.mark.parametrize(
    ("name", "config"), [("cti-owner", "cti-bridge"), ("cti-web", "cti-bridge-web")]
)
def test_compose_keeps_both_daemons_unprivileged(name: str, config: str) -> None:
    service = _service((DOCKER / "compose.yaml").read_text(), name)
    assert "\n    user:" not in service  # the image's user, never overridden to root
    for line in (
        "read_only: true",
        "cap_drop: [ALL]",
        'security_opt: ["no-new-privileges:true"]',
        f"- {name}-data:/var/lib/cti-bridge",
        f"- ./{config}.toml:/etc/cti-bridge/cti-bridge.toml:ro",
    ):
        assert f"    {line}" in service, line


def test_compose_runs_an_owner_node_and_a_web_node() -> None:
    """The owner shares the PBX's network namespace (AMI on its loopback); the web node
    has its own, and its own port."""
    text = (DOCKER / "compose.yaml").read_text()
    assert 'network_mode: "service:asterisk"' in _service(text, "cti-owner")
    web = _service(text, "cti-web")
    assert "network_mode" not in web and '"127.0.0.1:8081:8080"' in web
    for name in ("asterisk", "postgres", "redis", "migrate"):
        assert f"\n  {name}:\n" in text, name


def test_the_asterisk_image_drops_root_for_asterisk() -> None:
    script = (DOCKER / "asterisk-entrypoint.sh").read_text()
    last = [line for line in script.splitlines() if line.startswith("exec ")][-1]
    assert "-U asterisk" in last and "-G asterisk" in last
