"""Operator accounts: passwords, devices, login tokens and login rate limiting.

Passwords are hashed with argon2 (argon2-cffi). Tokens are random and only their
SHA-256 is stored, so the sessions table is useless to whoever reads it; they expire,
and a token stops working when its operator is deactivated or changes role (the token
was issued for the old role). Failed logins are counted in three buckets (per username
and source, per username, per source: ``login_refusal``, docs/security.md): guessing
one account from one address is stopped, guessing it from many addresses or many
accounts from one address is slowed to one guess per account and address, and nobody
can lock a whole helpdesk behind one NAT out. A refused attempt is refused also with the
right password, so guessing gains nothing. Unknown usernames cost the same hash as known
ones, so timing does not reveal which usernames exist.

Synchronous; the web side runs these in its thread pool.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from .db import writing
from .models import ROLES, LoginAttempt, Operator, OperatorDevice, OperatorSession
from .records import clean_text

__all__ = [
    "AccountError",
    "Accounts",
    "LoginLimits",
    "LoginRefused",
    "LoginThrottled",
    "OperatorInfo",
    "login_refusal",
]

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
DEVICE = re.compile(r"[A-Za-z][A-Za-z0-9_]*/[^\s;/,][^\s;,]{0,120}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
#: Tokens per query of ``valid_tokens`` (SQLite's older builds allow 999 parameters).
TOKEN_BATCH = 500


class AccountError(ValueError):
    """A request the account store refuses (bad username, unknown operator, ...)."""

    user_facing = True


class LoginRefused(Exception):
    """Wrong username or password, or an inactive account: deliberately not said which."""


class LoginThrottled(LoginRefused):
    """Too many failures for this username from this source; try again later."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; retry in {int(retry_after) + 1} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """Failed logins allowed within ``window`` seconds, per bucket (docs/security.md)."""

    #: Per (username, source): past it that username is refused from that source.
    per_pair: int = 5
    #: Per username, from every source: past it the username is *hot*.
    per_account: int = 20
    #: Per source, for every username: past it the source is *hot*.
    per_source: int = 50
    window: float = 900.0

    def fetch(self) -> tuple[int, int, int]:
        """How many of the newest failures each bucket needs: pair, account, source."""
        return self.per_pair, self.per_account, self.per_source


def login_refusal(
    limits: LoginLimits,
    now: datetime,
    pair: Sequence[datetime],
    account: Sequence[datetime],
    source: Sequence[datetime],
) -> float | None:
    """Seconds until a login of this (username, source) may be tried again, or ``None``:
    it may be tried now. Each argument is the bucket's failures within the window,
    newest first, at least as many as ``LoginLimits.fetch`` asks for (when there are).

    The rule: a (username, source) pair may fail ``per_pair`` times. While its username
    (``per_account`` failures from anywhere) or its source (``per_source`` failures for
    any usernames) is hot, it may fail once: a pair with a failure is refused, a clean
    one is still checked. So the right password of an operator nobody guessed at gets
    in from a hot source (the helpdesk behind one NAT), and from a clean desk when the
    operator's username is hot; a guesser gets one guess per username and source."""
    window = timedelta(seconds=limits.window)
    hot_ends = [
        failures[limit - 1] + window
        for failures, limit in ((account, limits.per_account), (source, limits.per_source))
        if len(failures) >= limit
    ]
    budget = 1 if hot_ends else limits.per_pair
    if len(pair) < budget:
        return None
    # Free again once the pair is clean, or once nothing is hot and the pair is
    # below its own limit.
    below_own = pair[limits.per_pair - 1] + window if len(pair) >= limits.per_pair else now
    retry = min(pair[0] + window, max([below_own, *hot_ends]))
    return max(0.0, (retry - now).total_seconds())


@dataclass(frozen=True, slots=True)
class OperatorInfo:
    id: int
    username: str
    name: str | None
    role: str
    devices: tuple[str, ...]
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "role": self.role,
            "devices": list(self.devices),
            "active": self.active,
        }

    # The CLI reads ``operator["username"]``; keep dict-style access for it.
    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _token_works(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """When a token (joined with its operator) still works: not revoked, not expired, the
    operator active and still of the token's role."""
    return (
        OperatorSession.revoked_at.is_(None),
        OperatorSession.expires_at > now,
        Operator.active.is_(True),
        Operator.role == OperatorSession.role,
    )


class Accounts:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
        max_failures: int = 5,
        max_failures_per_account: int = 20,
        max_failures_per_source: int = 50,
        failure_window: float = 900.0,
        token_lifetime: float = 12 * 3600.0,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._limits = LoginLimits(
            max_failures, max_failures_per_account, max_failures_per_source, failure_window
        )
        self._window = timedelta(seconds=failure_window)
        self._token_lifetime = timedelta(seconds=token_lifetime)
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

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
        with writing(self._sessions) as session:
            if session.scalar(select(Operator.id).where(Operator.username == username)):
                raise AccountError(f"operator {username!r} already exists")
            operator = Operator(
                username=username,
                name=clean_text(name, 128),
                role=role,
                password_hash=self._hasher.hash(password),
                active=active,
                created_at=now,
                password_changed_at=now,
            )
            session.add(operator)
            session.flush()
            for device in devices:
                self._bind(session, operator, device, now)
            session.flush()
            session.refresh(operator, ["devices"])
            return _info(operator)

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        with writing(self._sessions) as session:
            operator = _operator(session, username)
            operator.password_hash = self._hasher.hash(password)
            operator.password_changed_at = self._now()

    def set_active(self, username: str, active: bool) -> None:
        with writing(self._sessions) as session:
            _operator(session, username).active = active

    def set_role(self, username: str, role: str) -> None:
        check_role(role)
        with writing(self._sessions) as session:
            _operator(session, username).role = role

    def bind_device(self, username: str, device: str) -> None:
        """Give ``device`` to ``username``; a device has one operator, so this moves it."""
        device = check_device(device)
        with writing(self._sessions) as session:
            self._bind(session, _operator(session, username), device, self._now())

    def unbind_device(self, device: str) -> bool:
        with writing(self._sessions) as session:
            result = session.execute(delete(OperatorDevice).where(OperatorDevice.device == device))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _bind(self, session: Session, operator: Operator, device: str, now: datetime) -> None:
        row = session.scalar(
            select(OperatorDevice).where(OperatorDevice.device == device).with_for_update()
        )
        if row is None:
            session.add(OperatorDevice(device=device, operator_id=operator.id, bound_at=now))
        elif row.operator_id != operator.id:
            row.operator_id = operator.id
            row.bound_at = now

    def get_operator(self, username: str) -> OperatorInfo | None:
        with self._sessions() as session:
            operator = session.scalar(
                select(Operator)
                .where(Operator.username == username)
                .options(selectinload(Operator.devices))
            )
            return None if operator is None else _info(operator)

    def list_operators(self) -> list[OperatorInfo]:
        with self._sessions() as session:
            operators = session.scalars(
                select(Operator).options(selectinload(Operator.devices)).order_by(Operator.username)
            )
            return [_info(o) for o in operators]

    def operator_for_device(self, device: str) -> OperatorInfo | None:
        with self._sessions() as session:
            operator = session.scalar(
                select(Operator)
                .join(OperatorDevice, OperatorDevice.operator_id == Operator.id)
                .where(OperatorDevice.device == device)
                .options(selectinload(Operator.devices))
            )
            return None if operator is None else _info(operator)

    def device_operators(self) -> dict[str, str]:
        """Every bound device and its operator's username (for the pop router's cache)."""
        with self._sessions() as session:
            rows = session.execute(
                select(OperatorDevice.device, Operator.username).join(
                    Operator, OperatorDevice.operator_id == Operator.id
                )
            )
            return dict(rows.all())

    # --- logins ----------------------------------------------------------------------

    def verify_login(self, username: str, password: str, source: str) -> OperatorInfo:
        """The operator, or ``LoginRefused`` / ``LoginThrottled``."""
        now = self._now()
        user, origin = username.lower()[:64], (source or "?")[:64]
        with writing(self._sessions) as session:
            session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - self._window))
            session.flush()
            buckets = [
                session.scalars(
                    select(LoginAttempt.at).where(*where).order_by(LoginAttempt.at.desc()).limit(n)
                ).all()
                for where, n in zip(
                    (
                        (LoginAttempt.username == user, LoginAttempt.source == origin),
                        (LoginAttempt.username == user,),
                        (LoginAttempt.source == origin,),
                    ),
                    self._limits.fetch(),
                    strict=True,
                )
            ]
            retry = login_refusal(self._limits, now, *buckets)
            if retry is not None:
                session.commit()
                raise LoginThrottled(retry)
            operator = session.scalar(
                select(Operator)
                .where(Operator.username == username)
                .options(selectinload(Operator.devices))
            )
            ok = self._password_ok(operator, password)
            if operator is None or not ok:
                session.add(LoginAttempt(username=user, source=origin, at=now))
                session.commit()
                raise LoginRefused("wrong username or password")
            session.execute(
                delete(LoginAttempt).where(
                    LoginAttempt.username == user, LoginAttempt.source == origin
                )
            )
            if self._hasher.check_needs_rehash(operator.password_hash):
                operator.password_hash = self._hasher.hash(password)
            return _info(operator)

    def _password_ok(self, operator: Operator | None, password: str) -> bool:
        stored = self._dummy_hash if operator is None else operator.password_hash
        try:
            ok: bool = self._hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            ok = False
        return ok and operator is not None and operator.active

    # --- tokens ----------------------------------------------------------------------

    def create_token(self, operator_id: int, lifetime: float | None = None) -> str:
        now = self._now()
        ttl = self._token_lifetime if lifetime is None else timedelta(seconds=lifetime)
        token = secrets.token_urlsafe(32)
        with writing(self._sessions) as session:
            operator = session.get(Operator, operator_id)
            if operator is None or not operator.active:
                raise AccountError(f"no active operator with id {operator_id}")
            session.add(
                OperatorSession(
                    token_hash=token_hash(token),
                    operator_id=operator.id,
                    role=operator.role,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return token

    def resolve_token(self, token: str) -> OperatorInfo | None:
        """Who holds ``token``, or None when it is unknown, expired or revoked."""
        if not token or len(token) > 256:
            return None
        now = self._now()
        with self._sessions() as session:
            operator = session.scalars(
                select(Operator)
                .join(OperatorSession, OperatorSession.operator_id == Operator.id)
                .where(OperatorSession.token_hash == token_hash(token), *_token_works(now))
                .options(selectinload(Operator.devices))
            ).one_or_none()
            return None if operator is None else _info(operator)

    def valid_tokens(self, tokens: Iterable[str]) -> set[str]:
        """Those of ``tokens`` that still work (what ``resolve_token`` would accept), in
        one query per ``TOKEN_BATCH`` tokens: the WebSocket hub re-checks all its screens'
        tokens at once."""
        hashes: dict[str, str] = {}
        for token in tokens:
            if token and len(token) <= 256:
                hashes[token_hash(token)] = token
        if not hashes:
            return set()
        now = self._now()
        wanted = list(hashes)
        valid: set[str] = set()
        with self._sessions() as session:
            for start in range(0, len(wanted), TOKEN_BATCH):
                rows = session.execute(
                    select(OperatorSession.token_hash)
                    .join(Operator, OperatorSession.operator_id == Operator.id)
                    .where(
                        OperatorSession.token_hash.in_(wanted[start : start + TOKEN_BATCH]),
                        *_token_works(now),
                    )
                )
                valid.update(hashes[found] for found in rows.scalars())
        return valid

    def revoke_token(self, token: str) -> bool:
        with writing(self._sessions) as session:
            row = session.scalar(
                select(OperatorSession).where(OperatorSession.token_hash == token_hash(token))
            )
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self._now()
            return True

    def purge_expired(self) -> int:
        """Delete expired and revoked tokens; run now and then."""
        now = self._now()
        with writing(self._sessions) as session:
            result = session.execute(
                delete(OperatorSession).where(
                    (OperatorSession.expires_at <= now) | OperatorSession.revoked_at.is_not(None)
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]


def _info(operator: Operator) -> OperatorInfo:
    return OperatorInfo(
        id=operator.id,
        username=operator.username,
        name=operator.name,
        role=operator.role,
        devices=tuple(d.device for d in operator.devices),
        active=operator.active,
    )


def _operator(session: Session, username: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.username == username))
    if operator is None:
        raise AccountError(f"no operator {username!r}")
    return operator


def check_username(username: str) -> None:
    if not USERNAME.fullmatch(username):
        raise AccountError(
            "a username is 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )


def check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def check_device(device: str) -> str:
    if not DEVICE.fullmatch(device):
        raise AccountError(
            f"{device[:60]!r} is not a device: use the channel prefix, e.g. PJSIP/1001 "
            "or Local/1001@agents"
        )
    return device
