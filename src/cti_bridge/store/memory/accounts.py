"""The memory twin of ``Accounts``: operators, devices, argon2 passwords, login limits and
tokens, on dicts, with the SQL store's rules (``store/accounts.py``): a token is kept as
its SHA-256 only and stops working when it expires, is revoked, or its operator is
deactivated or changes role; failed logins are counted per (username, source), per
username and per source within the window and judged by the same rule
(``accounts.login_refusal``), and unknown usernames cost a hash too."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..accounts import (
    MAX_PASSWORD,
    AccountError,
    LoginLimits,
    LoginRefused,
    LoginThrottled,
    OperatorInfo,
    check_device,
    check_password,
    check_role,
    check_username,
    login_refusal,
    token_hash,
)
from ..records import clean_text
from .tables import Row, Tables

__all__ = ["MemoryAccounts"]


class MemoryAccounts:
    def __init__(
        self,
        tables: Tables,
        *,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
        max_failures: int = 5,
        max_failures_per_account: int = 20,
        max_failures_per_source: int = 50,
        failure_window: float = 900.0,
        token_lifetime: float = 12 * 3600.0,
    ) -> None:
        self._t = tables
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._limits = LoginLimits(
            max_failures, max_failures_per_account, max_failures_per_source, failure_window
        )
        self._window = timedelta(seconds=failure_window)
        self._token_lifetime = timedelta(seconds=token_lifetime)
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self._sessions: dict[str, Row] = {}  # token hash -> session row
        self._attempts: list[Row] = []  # failed logins: username, source, at

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # --- operators and devices -------------------------------------------------------

    def add_operator(
        self,
        username: str,
        *,
        role: str,
        password: str,
        name: str | None = None,
        devices: Iterable[str] = (),
        active: bool = True,
    ) -> OperatorInfo:
        check_username(username)
        check_role(role)
        check_password(password)
        devices = [check_device(d) for d in devices]
        now = self._now()
        with self._t.lock:
            if self._find(username) is not None:
                raise AccountError(f"operator {username!r} already exists")
            operator_id = self._t.next_id("operators")
            self._t.operators[operator_id] = {
                "id": operator_id,
                "username": username,
                "name": clean_text(name, 128),
                "role": role,
                "password_hash": self._hasher.hash(password),
                "active": active,
                "created_at": now,
                "password_changed_at": now,
            }
            for device in devices:
                self._t.devices[device] = operator_id
            return self._info(self._t.operators[operator_id])

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        with self._t.lock:
            operator = self._operator(username)
            operator["password_hash"] = self._hasher.hash(password)
            operator["password_changed_at"] = self._now()

    def set_active(self, username: str, active: bool) -> None:
        with self._t.lock:
            self._operator(username)["active"] = active

    def set_role(self, username: str, role: str) -> None:
        check_role(role)
        with self._t.lock:
            self._operator(username)["role"] = role

    def bind_device(self, username: str, device: str) -> None:
        """Give ``device`` to ``username``; a device has one operator, so this moves it."""
        device = check_device(device)
        with self._t.lock:
            self._t.devices[device] = self._operator(username)["id"]

    def unbind_device(self, device: str) -> bool:
        with self._t.lock:
            return self._t.devices.pop(device, None) is not None

    def get_operator(self, username: str) -> OperatorInfo | None:
        with self._t.lock:
            found = self._find(username)
            return None if found is None else self._info(found)

    def list_operators(self) -> list[OperatorInfo]:
        with self._t.lock:
            rows = sorted(self._t.operators.values(), key=lambda o: o["username"])
            return [self._info(o) for o in rows]

    def operator_for_device(self, device: str) -> OperatorInfo | None:
        with self._t.lock:
            operator_id = self._t.devices.get(device)
            return None if operator_id is None else self._info(self._t.operators[operator_id])

    def device_operators(self) -> dict[str, str]:
        with self._t.lock:
            return {d: self._t.operators[o]["username"] for d, o in self._t.devices.items()}

    # --- logins ----------------------------------------------------------------------

    def verify_login(self, username: str, password: str, source: str) -> OperatorInfo:
        """The operator, or ``LoginRefused`` / ``LoginThrottled``."""
        now = self._now()
        user, origin = username.lower()[:64], (source or "?")[:64]
        with self._t.lock:
            self._attempts = [a for a in self._attempts if a["at"] >= now - self._window]
            newest = sorted(self._attempts, key=lambda a: a["at"], reverse=True)
            retry = login_refusal(
                self._limits,
                now,
                [a["at"] for a in newest if a["username"] == user and a["source"] == origin],
                [a["at"] for a in newest if a["username"] == user],
                [a["at"] for a in newest if a["source"] == origin],
            )
            if retry is not None:
                raise LoginThrottled(retry)
            operator = self._find(username)
            if operator is None or not self._password_ok(operator, password):
                self._attempts.append({"username": user, "source": origin, "at": now})
                raise LoginRefused("wrong username or password")
            self._attempts = [
                a for a in self._attempts if not (a["username"] == user and a["source"] == origin)
            ]
            if self._hasher.check_needs_rehash(operator["password_hash"]):
                operator["password_hash"] = self._hasher.hash(password)
            return self._info(operator)

    def _password_ok(self, operator: Row | None, password: str) -> bool:
        stored = self._dummy_hash if operator is None else operator["password_hash"]
        try:
            ok: bool = self._hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            ok = False
        return ok and operator is not None and operator["active"]

    # --- tokens ----------------------------------------------------------------------

    def create_token(self, operator_id: int, lifetime: float | None = None) -> str:
        now = self._now()
        ttl = self._token_lifetime if lifetime is None else timedelta(seconds=lifetime)
        token = secrets.token_urlsafe(32)
        with self._t.lock:
            operator = self._t.operators.get(operator_id)
            if operator is None or not operator["active"]:
                raise AccountError(f"no active operator with id {operator_id}")
            self._sessions[token_hash(token)] = {
                "operator_id": operator_id,
                "role": operator["role"],
                "created_at": now,
                "expires_at": now + ttl,
                "revoked_at": None,
            }
        return token

    def resolve_token(self, token: str) -> OperatorInfo | None:
        """Who holds ``token``, or None when it is unknown, expired or revoked."""
        if not token or len(token) > 256:
            return None
        now = self._now()
        with self._t.lock:
            session = self._sessions.get(token_hash(token))
            if session is None or not self._works(session, now):
                return None
            return self._info(self._t.operators[session["operator_id"]])

    def valid_tokens(self, tokens: Iterable[str]) -> set[str]:
        now = self._now()
        with self._t.lock:
            return {
                token
                for token in tokens
                if token
                and len(token) <= 256
                and (session := self._sessions.get(token_hash(token))) is not None
                and self._works(session, now)
            }

    def revoke_token(self, token: str) -> bool:
        with self._t.lock:
            session = self._sessions.get(token_hash(token))
            if session is None or session["revoked_at"] is not None:
                return False
            session["revoked_at"] = self._now()
            return True

    def purge_expired(self) -> int:
        """Delete expired and revoked tokens."""
        now = self._now()
        with self._t.lock:
            gone = [
                h
                for h, s in self._sessions.items()
                if s["expires_at"] <= now or s["revoked_at"] is not None
            ]
            for found in gone:
                del self._sessions[found]
            return len(gone)

    def _works(self, session: Row, now: datetime) -> bool:
        operator = self._t.operators[session["operator_id"]]
        return (
            session["revoked_at"] is None
            and session["expires_at"] > now
            and operator["active"]
            and operator["role"] == session["role"]
        )

    # --- rows ------------------------------------------------------------------------

    def _find(self, username: str) -> Row | None:
        for row in self._t.operators.values():
            if row["username"] == username:
                return row
        return None

    def _operator(self, username: str) -> Row:
        row = self._find(username)
        if row is None:
            raise AccountError(f"no operator {username!r}")
        return row

    def _info(self, row: Row) -> OperatorInfo:
        devices = sorted(d for d, o in self._t.devices.items() if o == row["id"])
        return OperatorInfo(
            id=row["id"],
            username=row["username"],
            name=row["name"],
            role=row["role"],
            devices=tuple(devices),
            active=row["active"],
        )
