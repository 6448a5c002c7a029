"""``[web] status_token`` (issue 13): ``/healthz`` and ``/metrics`` name the AMI host, its
user, the PBX's banner and the nodes. Unset (the default) both are open, as monitoring
expects on a private network; set, ``/metrics`` needs the token (401 without it or with
a wrong one, a user's login token included) and ``/healthz`` without it answers only
its status, with the same code, so a load balancer still learns ok or not."""

from __future__ import annotations

from typing import Any

import pytest

from cti_bridge.app.config import ConfigError, parse_config
from tests.support.helpdesk import Helpdesk

TOKEN = "monitoring-0123456789abcdef"


def ask(desk: Helpdesk, path: str, **kwargs: Any) -> tuple[int, Any]:
    answer = desk.ask("GET", path, **kwargs)
    kind = answer.headers.get("content-type", "")
    body = answer.json() if kind.startswith("application/json") else answer.body.decode()
    return answer.status, body


def test_unset_both_are_open_with_their_detail() -> None:
    desk = Helpdesk()
    code, health = ask(desk, "/healthz")
    assert code in (200, 503) and "ami" in health and "database" in health
    assert ask(desk, "/metrics")[0] == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", "Basic bW9uaXRvcjp4", "Bearer "],
)
def test_set_the_detail_and_the_metrics_need_it(authorization: str | None) -> None:
    desk = Helpdesk(web={"host": "127.0.0.1", "port": 0, "status_token": TOKEN})
    headers = {} if authorization is None else {"authorization": authorization}
    code, health = ask(desk, "/healthz", headers=headers)
    assert code in (200, 503) and set(health) == {"status"}  # ok or not, nothing more
    code, body = ask(desk, "/metrics", headers=headers)
    assert code == 401 and "status token" in body["error"]


def test_set_a_users_login_token_is_not_the_status_token() -> None:
    desk = Helpdesk(web={"host": "127.0.0.1", "port": 0, "status_token": TOKEN})
    login = desk.token("sofie")  # a supervisor's
    assert set(ask(desk, "/healthz", token=login)[1]) == {"status"}
    assert ask(desk, "/metrics", token=login)[0] == 401


def test_set_the_token_opens_both() -> None:
    desk = Helpdesk(web={"host": "127.0.0.1", "port": 0, "status_token": TOKEN})
    code, health = ask(desk, "/healthz", token=TOKEN)
    assert code in (200, 503) and "ami" in health and "node" in health
    code, body = ask(desk, "/metrics", token=TOKEN)
    assert code == 200 and "cti_" in body


def test_the_token_from_the_environment_and_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    pbx = {"name": "m", "username": "u", "secret": "s"}
    base = {"database": {"url": "sqlite://"}, "pbx": [pbx]}
    monkeypatch.setenv("CTI_STATUS_TOKEN", TOKEN)
    config = parse_config({**base, "web": {"status_token_env": "CTI_STATUS_TOKEN"}}, source="t")
    assert config.web.status_token == TOKEN
    assert TOKEN not in repr(config.web)
    with pytest.raises(ConfigError, match="16"):
        parse_config({**base, "web": {"status_token": "short"}}, source="t")
    monkeypatch.setenv("CTI_STATUS_TOKEN", "short")
    with pytest.raises(ConfigError, match="shorter than 16"):
        parse_config({**base, "web": {"status_token_env": "CTI_STATUS_TOKEN"}}, source="t")
