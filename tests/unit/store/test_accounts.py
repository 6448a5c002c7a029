"""Operators, devices, passwords (argon2), tokens (expiry) and login rate limiting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from cti_bridge.store import AccountError, LoginRefused, LoginThrottled, Store
from cti_bridge.store.accounts import LoginLimits, login_refusal
from cti_bridge.store.models import Operator, OperatorSession
from cti_bridge.testing.store import FakeTime
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]


@pytest.fixture
def anna(store: Store) -> int:
    info = store.accounts.add_operator(
        "anna",
        role="operator",
        password="correct horse",
        name="Anna Janssens",
        devices=["PJSIP/1001", "Local/1001@agents"],
    )
    return info.id


def test_add_operator(store: Store, anna: int) -> None:
    info = store.accounts.get_operator("anna")
    assert info is not None
    assert info.id == anna
    assert (info.username, info.name, info.role, info.active) == (
        "anna",
        "Anna Janssens",
        "operator",
        True,
    )
    assert info.devices == ("Local/1001@agents", "PJSIP/1001")
    assert info["username"] == "anna"  # the CLI reads it like a dict
    with store.sessions() as session:
        stored = session.scalars(select(Operator.password_hash)).one()
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored


@every_backend
@pytest.mark.parametrize(
    ("username", "role", "password", "devices"),
    [
        ("", "operator", "long enough", []),
        ("anna smith", "operator", "long enough", []),
        ("anna\nEvent: x", "operator", "long enough", []),
        ("bob", "god", "long enough", []),
        ("bob", "operator", "short", []),
        ("bob", "operator", "long enough", ["1001"]),
        ("bob", "operator", "long enough", ["PJSIP/1001-0000002a;1 x"]),
    ],
)
def test_add_operator_validates(
    store: Store, username: str, role: str, password: str, devices: list[str]
) -> None:
    with pytest.raises(AccountError):
        store.accounts.add_operator(username, role=role, password=password, devices=devices)
    assert store.accounts.list_operators() == []


@every_backend
def test_usernames_are_unique(store: Store, anna: int) -> None:
    with pytest.raises(AccountError, match="already exists"):
        store.accounts.add_operator("anna", role="admin", password="another one")


@every_backend
def test_devices_belong_to_one_operator(store: Store, anna: int) -> None:
    store.accounts.add_operator("bart", role="supervisor", password="bart-secret")
    found = store.accounts.operator_for_device("PJSIP/1001")
    assert found is not None and found.username == "anna"
    store.accounts.bind_device("bart", "PJSIP/1001")  # moves it
    found = store.accounts.operator_for_device("PJSIP/1001")
    assert found is not None and found.username == "bart"
    assert found.role == "supervisor"
    anna_now = store.accounts.get_operator("anna")
    assert anna_now is not None and anna_now.devices == ("Local/1001@agents",)
    assert store.accounts.operator_for_device("PJSIP/9999") is None
    assert store.accounts.device_operators() == {
        "Local/1001@agents": "anna",
        "PJSIP/1001": "bart",
    }
    assert store.accounts.unbind_device("PJSIP/1001") is True
    assert store.accounts.operator_for_device("PJSIP/1001") is None
    with pytest.raises(AccountError):
        store.accounts.bind_device("nobody", "PJSIP/1003")


@every_backend
def test_login(store: Store, anna: int) -> None:
    info = store.accounts.verify_login("anna", "correct horse", "10.0.0.5")
    assert info.id == anna
    assert info.devices == ("Local/1001@agents", "PJSIP/1001")
    with pytest.raises(LoginRefused):
        store.accounts.verify_login("anna", "wrong horse", "10.0.0.5")
    with pytest.raises(LoginRefused):
        store.accounts.verify_login("nobody", "correct horse", "10.0.0.5")


@every_backend
def test_set_password(store: Store, anna: int) -> None:
    store.accounts.set_password("anna", "battery staple")
    with pytest.raises(LoginRefused):
        store.accounts.verify_login("anna", "correct horse", "10.0.0.5")
    assert store.accounts.verify_login("anna", "battery staple", "10.0.0.5").id == anna
    with pytest.raises(AccountError):
        store.accounts.set_password("anna", "short")


@every_backend
def test_an_inactive_operator_cannot_log_in(store: Store, anna: int) -> None:
    token = store.accounts.create_token(anna)
    store.accounts.set_active("anna", False)
    with pytest.raises(LoginRefused):
        store.accounts.verify_login("anna", "correct horse", "10.0.0.5")
    assert store.accounts.resolve_token(token) is None


@every_backend
def test_failures_are_rate_limited_per_username_and_source(
    store: Store, anna: int, fake_time: FakeTime
) -> None:
    for _ in range(5):
        with pytest.raises(LoginRefused) as refused:
            store.accounts.verify_login("anna", "guess", "10.0.0.66")
        assert not isinstance(refused.value, LoginThrottled)
    # Now even the right password is refused from that source...
    with pytest.raises(LoginThrottled) as throttled:
        store.accounts.verify_login("anna", "correct horse", "10.0.0.66")
    assert 0 < throttled.value.retry_after <= 900
    # ...also when the username's case is varied...
    with pytest.raises(LoginThrottled):
        store.accounts.verify_login("ANNA", "correct horse", "10.0.0.66")
    # ...but Anna at her own desk is not locked out by the attacker.
    assert store.accounts.verify_login("anna", "correct horse", "10.0.0.5").id == anna
    fake_time.advance(901)
    assert store.accounts.verify_login("anna", "correct horse", "10.0.0.66").id == anna


@every_backend
def test_success_clears_the_failures(store: Store, anna: int) -> None:
    for _ in range(4):
        with pytest.raises(LoginRefused):
            store.accounts.verify_login("anna", "guess", "10.0.0.5")
    store.accounts.verify_login("anna", "correct horse", "10.0.0.5")
    for _ in range(4):
        with pytest.raises(LoginRefused) as refused:
            store.accounts.verify_login("anna", "guess", "10.0.0.5")
        assert not isinstance(refused.value, LoginThrottled)


@every_backend
def test_one_source_spraying_many_usernames_is_slowed_not_the_helpdesk_behind_it(
    store: Store, anna: int, fake_time: FakeTime
) -> None:
    """Issue 13: 50 failures from one address (a sprayer behind the helpdesk's NAT) used
    to refuse every login from it. Now the hot source gets one guess per username:
    a username that failed from it is refused, the right password of one that did not
    still gets in."""
    store.accounts.add_operator("bart", role="operator", password="bart's horse")
    nat = "10.0.0.99"
    for n in range(50):
        with pytest.raises(LoginRefused) as refused:
            store.accounts.verify_login(f"user{n}", "guess", nat)
        assert not isinstance(refused.value, LoginThrottled)
    # The sprayer's second guess at a username is refused unchecked...
    with pytest.raises(LoginThrottled) as throttled:
        store.accounts.verify_login("user0", "guess 2", nat)
    assert 0 < throttled.value.retry_after <= 900
    # ...Anna behind the same NAT logs in...
    assert store.accounts.verify_login("anna", "correct horse", nat).id == anna
    # ...and Bart, after one typo, has used the one try a hot source allows.
    with pytest.raises(LoginRefused) as refused:
        store.accounts.verify_login("bart", "bart's hrose", nat)
    assert not isinstance(refused.value, LoginThrottled)
    with pytest.raises(LoginThrottled):
        store.accounts.verify_login("bart", "bart's horse", nat)
    assert store.accounts.verify_login("bart", "bart's horse", "10.0.0.7").username == "bart"
    fake_time.advance(901)  # the window has passed: nothing is hot
    assert store.accounts.verify_login("bart", "bart's horse", nat).username == "bart"
    for _ in range(5):
        with pytest.raises(LoginRefused) as refused:
            store.accounts.verify_login("user0", "guess", nat)
        assert not isinstance(refused.value, LoginThrottled)


@every_backend
def test_one_username_guessed_from_many_sources_is_slowed(
    store: Store, anna: int, fake_time: FakeTime
) -> None:
    """20 failures for one username from anywhere make it hot: each source that failed
    for it is refused; Anna at her clean desk still gets in."""
    for n in range(20):
        for _ in range(1 if n else 2):
            with pytest.raises(LoginRefused) as refused:
                store.accounts.verify_login("anna", "guess", f"198.51.100.{n}")
            assert not isinstance(refused.value, LoginThrottled)
    with pytest.raises(LoginThrottled) as throttled:
        store.accounts.verify_login("anna", "correct horse", "198.51.100.3")
    assert 0 < throttled.value.retry_after <= 900
    # A fresh source gets its one check; a wrong one uses it up.
    with pytest.raises(LoginRefused) as refused:
        store.accounts.verify_login("anna", "guess", "198.51.100.200")
    assert not isinstance(refused.value, LoginThrottled)
    with pytest.raises(LoginThrottled):
        store.accounts.verify_login("anna", "correct horse", "198.51.100.200")
    assert store.accounts.verify_login("anna", "correct horse", "10.0.0.5").id == anna
    # Other usernames are not slowed from those sources.
    store.accounts.add_operator("bart", role="operator", password="bart's horse")
    assert store.accounts.verify_login("bart", "bart's horse", "198.51.100.3").username == "bart"
    fake_time.advance(901)
    assert store.accounts.verify_login("anna", "correct horse", "198.51.100.3").id == anna


@pytest.mark.parametrize(
    ("pair", "account", "source", "retry"),
    [
        ([], [], [], None),
        ([900, 800, 700, 600], [], [], None),  # four failures of five
        ([900, 800, 700, 600, 500], [], [], 500 + 900),  # when the fifth newest ages out
        ([900], [], [200] * 50, 200 + 900),  # hot source: one try, until it cools
        ([], [], [200] * 50, None),  # hot source, clean pair: checked
        ([900], [200] * 20, [], 200 + 900),  # hot username: one try, until it cools
        ([900], [200] * 19, [200] * 49, None),  # neither quite hot
        # Hot until 300 + 900, when the pair is below its own limit: before it is clean.
        ([950, 940], [], [*[950] * 49, 300], 300 + 900),
        # Hot until 950 + 900, but the pair is clean before that.
        ([400, 400], [950] * 20, [], 400 + 900),
    ],
)
def test_the_login_rule(
    pair: list[float], account: list[float], source: list[float], retry: float | None
) -> None:
    limits = LoginLimits()
    now = 1000.0

    def at(seconds: list[float]) -> list[datetime]:
        return [datetime.fromtimestamp(s, UTC) for s in sorted(seconds, reverse=True)]

    got = login_refusal(limits, datetime.fromtimestamp(now, UTC), at(pair), at(account), at(source))
    assert got == (None if retry is None else retry - now)


def test_tokens(store: Store, anna: int, fake_time: FakeTime) -> None:
    token = store.accounts.create_token(anna, lifetime=3600)
    assert len(token) >= 40
    holder = store.accounts.resolve_token(token)
    assert holder is not None
    assert (holder.id, holder.username, holder.role) == (anna, "anna", "operator")
    assert holder.devices == ("Local/1001@agents", "PJSIP/1001")
    with store.sessions() as session:
        stored = session.scalars(select(OperatorSession.token_hash)).one()
    assert stored != token and token not in stored  # only a hash is kept
    assert store.accounts.resolve_token(token + "x") is None
    assert store.accounts.resolve_token("") is None
    assert store.accounts.resolve_token("x" * 10_000) is None
    fake_time.advance(3599)
    assert store.accounts.resolve_token(token) is not None
    fake_time.advance(2)
    assert store.accounts.resolve_token(token) is None  # expired
    assert store.accounts.purge_expired() == 1


@every_backend
def test_revoked_tokens_and_role_changes(store: Store, anna: int) -> None:
    first = store.accounts.create_token(anna)
    second = store.accounts.create_token(anna)
    assert first != second
    assert store.accounts.revoke_token(first) is True
    assert store.accounts.revoke_token(first) is False
    assert store.accounts.resolve_token(first) is None
    assert store.accounts.resolve_token(second) is not None
    store.accounts.set_role("anna", "supervisor")
    assert store.accounts.resolve_token(second) is None  # issued for the old role
    third = store.accounts.create_token(anna)
    holder = store.accounts.resolve_token(third)
    assert holder is not None and holder.role == "supervisor"


@every_backend
def test_valid_tokens_checks_many_at_once(store: Store, anna: int, fake_time: FakeTime) -> None:
    store.accounts.add_operator("bart", role="operator", password="correct horse")
    bart = store.accounts.get_operator("bart")
    assert bart is not None
    short = store.accounts.create_token(anna, lifetime=60)
    revoked = store.accounts.create_token(anna)
    bart_token = store.accounts.create_token(bart.id)
    many = [store.accounts.create_token(anna) for _ in range(600)]  # more than one query
    store.accounts.revoke_token(revoked)
    asked = [short, revoked, bart_token, *many, "", "x" * 10_000, many[0] + "x"]

    def one_by_one() -> set[str]:
        return {token for token in asked if store.accounts.resolve_token(token) is not None}

    assert store.accounts.valid_tokens(asked) == {short, bart_token, *many} == one_by_one()
    fake_time.advance(61)  # expired
    assert store.accounts.valid_tokens(asked) == {bart_token, *many} == one_by_one()
    store.accounts.set_active("bart", False)  # deactivated
    assert store.accounts.valid_tokens(asked) == set(many) == one_by_one()
    store.accounts.set_role("anna", "supervisor")  # tokens issued for the old role
    assert store.accounts.valid_tokens(asked) == set() == one_by_one()
    assert store.accounts.valid_tokens([]) == set()


@every_backend
def test_no_token_for_unknown_or_inactive_operators(store: Store, anna: int) -> None:
    with pytest.raises(AccountError):
        store.accounts.create_token(4242)
    store.accounts.set_active("anna", False)
    with pytest.raises(AccountError):
        store.accounts.create_token(anna)
