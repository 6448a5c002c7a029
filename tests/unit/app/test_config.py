from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cti_bridge.app.config import ConfigError, load_config, parse_config
from tests.support.paths import REPO

GOOD = """
[web]
host = "127.0.0.1"
port = 8080
[database]
url = "sqlite:///cti-bridge.sqlite3"
[bus]
url = "memory://"
[phone]
default_region = "BE"
[[pbx]]
name = "main"
host = "127.0.0.1"
port = 5038
username = "cti"
secret_env = "CTI_AMI_SECRET"
"""


def test_the_documented_keys_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTI_AMI_SECRET", "s3cret")
    path = tmp_path / "cti.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.web.port == 8080
    assert config.phone.default_region == "BE"
    (pbx,) = config.pbx
    assert (pbx.name, pbx.host, pbx.port, pbx.username, pbx.secret) == (
        "main",
        "127.0.0.1",
        5038,
        "cti",
        "s3cret",
    )
    assert "s3cret" not in repr(config)


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cti.toml"
    path.write_text("[web]\nport = 9000\n")
    monkeypatch.setenv("CTI_BRIDGE_CONFIG", str(path))
    assert load_config(None).web.port == 9000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"web": {"prot": 1}}, "config: web.prot: unknown key"),
        ({"web": {"port": 70000}}, "config: web.port: Input should be less than or equal to 65535"),
        ({"database": {"url": "mysql://x"}}, "config: database.url: must be a sqlite:///"),
        (
            {"web": {"trusted_proxies": ["10.0.0.1", "10.0.0.300"]}},
            "config: web.trusted_proxies: '10.0.0.300' is not an IP address or network",
        ),
        (
            {"web": {"trusted_proxies": ["10.0.0.1/8"]}},
            "config: web.trusted_proxies: '10.0.0.1/8' is not an IP address or network",
        ),
        ({"web": {"trusted_proxies": "10.0.0.1"}}, "config: web.trusted_proxies: must be a list"),
        ({"web": {"login_max_failures_per_source": 0}}, "config: web.login_max_failures_per_so"),
        (
            {"web": {"call_history": "mine"}},
            "config: web.call_history: Input should be 'shared' or 'own'",
        ),
        ({"bus": {"url": "amqp://x"}}, "config: bus.url: must be memory:// or redis://"),
        ({"phone": {"default_region": "XX"}}, "config: phone.default_region: 'XX' is not"),
        ({"pbx": [{"name": "m", "secret": "s"}]}, "config: pbx[0].username: missing"),
        ({"pbx": [{"name": "m", "username": "u"}]}, "config: pbx[0].secret_env: missing"),
        (
            {"pbx": [{"name": "m", "username": "u", "secret_env": "CTI_TEST_UNSET_VAR"}]},
            "config: pbx[0].secret_env: environment variable CTI_TEST_UNSET_VAR is not set",
        ),
        (
            {"pbx": [{"name": "m", "username": "u", "secret": "a", "secret_env": "B"}]},
            "config: pbx[0]: give secret or secret_env, not both",
        ),
        (
            {"pbx": [{"name": "m", "username": "u", "secret": "a"}] * 2},
            "config: pbx: two [[pbx]] entries are named 'm'",
        ),
    ],
)
def test_a_bad_config_is_one_line_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_trusted_proxies_are_addresses_and_networks() -> None:
    web = parse_config({"web": {"trusted_proxies": ["127.0.0.1", "10.1.0.0/16", "::1"]}}).web
    assert [str(n) for n in web.trusted_networks] == ["127.0.0.1/32", "10.1.0.0/16", "::1/128"]
    assert parse_config({}).web.trusted_networks == ()  # default: nobody's header counts
    assert (web.login_max_failures_per_account, web.login_max_failures_per_source) == (20, 50)


def test_call_history_is_shared_unless_told() -> None:
    assert parse_config({}).web.call_history == "shared"
    assert parse_config({"web": {"call_history": "own"}}).web.call_history == "own"


@pytest.mark.parametrize("role", ["all", "owner", "web"])
def test_every_node_role_loads(role: str) -> None:
    config = parse_config({"node": {"name": "node-b", "role": role}}, source="test")
    assert (config.node.name, config.node.role) == ("node-b", role)


def test_an_unknown_node_role_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"node\.role"):
        parse_config({"node": {"role": "standby"}}, source="test")


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[web\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_no_config_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTI_BRIDGE_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="--config FILE or set CTI_BRIDGE_CONFIG"):
        load_config(None)


def test_the_shipped_example_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTI_AMI_SECRET", "s3cret")
    repo = REPO
    for name in (
        "config/cti-bridge.example.toml",
        "docker/cti-bridge.toml",
        "docker/cti-bridge-web.toml",
    ):
        config = load_config(repo / name)
        assert config.pbx[0].secret == "s3cret", name
    assert load_config(repo / "docker/cti-bridge.toml").node.role == "all"
    web = load_config(repo / "docker/cti-bridge-web.toml")
    assert (web.node.role, web.node.name, web.bus.url) == ("web", "web-1", "redis://redis:6379/0")


def test_agi_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTI_TEST_AGI", "a-long-enough-service-token")
    config = parse_config({"agi": {"token_env": "CTI_TEST_AGI"}})
    assert config.agi.token == "a-long-enough-service-token"
    assert "service-token" not in repr(config)
    monkeypatch.setenv("CTI_TEST_AGI", "short")
    with pytest.raises(ConfigError, match=r"agi\.token_env: the token in CTI_TEST_AGI is shorter"):
        parse_config({"agi": {"token_env": "CTI_TEST_AGI"}})
    assert parse_config({}).agi.token is None


def test_the_dialer_defaults_and_the_documented_keys() -> None:
    assert not parse_config({}).dialer.enabled
    config = parse_config(
        {
            "dialer": {
                "enabled": True,
                "context": "callback",
                "number_format": "e164",
                "operator_ring_seconds": 20,
                "max_attempts": 4,
                "retry_seconds": [600, 1800],
                "owner_grace_seconds": 900,
                "timezone": "America/New_York",
                "holidays": "be",
                "hours": {"mon": "08:00-12:00,13:00-18:00", "sun": "00:00-24:00"},
            }
        }
    ).dialer
    assert config.enabled and config.number_format == "e164" and config.holidays == "BE"
    policy = config.policy()
    assert policy.hours == (((480, 720), (780, 1080)), (), (), (), (), (), ((0, 1440),))
    assert (policy.max_attempts, policy.retry_seconds, policy.timezone) == (
        4,
        (600.0, 1800.0),
        "America/New_York",
    )
    assert date(2026, 12, 25) in policy.holidays
    assert (
        date(2026, 12, 25)
        not in parse_config({"dialer": {"holidays": ""}}).dialer.policy().holidays
    )
    # without [dialer.hours]: Monday to Friday 08:00-18:00
    assert parse_config({}).dialer.policy().hours == (((480, 1080),),) * 5 + ((), ())


@pytest.mark.parametrize(
    ("dialer", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "config: dialer.timezone: 'Mars/Olympus' is not an IANA"),
        ({"holidays": "XX"}, "config: dialer.holidays: 'XX' is not a country the holidays"),
        ({"hours": {"mon": "8-18"}}, "config: dialer.hours.mon: '8-18' is not HH:MM-HH:MM"),
        ({"hours": {"tue": "18:00-08:00"}}, "config: dialer.hours.tue: '18:00-08:00' ends before"),
        ({"hours": {"monday": "08:00-18:00"}}, "config: dialer.hours.monday: unknown key"),
        ({"retry_seconds": []}, "config: dialer.retry_seconds: "),
        ({"retry_seconds": [600, 0]}, "config: dialer.retry_seconds[1]: Input should be greater"),
        (
            {"max_attempts": 0},
            "config: dialer.max_attempts: Input should be greater than or equal to 1",
        ),
        ({"number_format": "local"}, "config: dialer.number_format: Input should be 'e164'"),
        ({"dial": True}, "config: dialer.dial: unknown key"),
    ],
)
def test_a_bad_dialer_section_names_the_key(dialer: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"dialer": dialer})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_the_example_config_ships_the_dialer_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTI_AMI_SECRET", "s3cret")
    config = load_config(REPO / "config/cti-bridge.example.toml")
    assert not config.dialer.enabled
    assert config.dialer.hours.mon == "08:00-18:00" and config.dialer.hours.sat is None
