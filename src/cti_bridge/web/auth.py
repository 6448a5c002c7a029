"""Who is asking: tokens, roles and what each role may see."""

from __future__ import annotations

from dataclasses import dataclass, field

from cti_bridge.vocabulary import ROLES  # noqa: F401 - the roles a Principal can have, kept importable here


@dataclass(frozen=True, slots=True)
class Principal:
    operator_id: int
    username: str
    role: str
    devices: tuple[str, ...] = ()
    name: str | None = None
    expires_at: float | None = field(default=None, compare=False)

    @property
    def sees_everything(self) -> bool:
        """Supervisors and admins read every call and may watch every pop."""
        return self.role in ("supervisor", "admin")


class AuthError(Exception):
    """No valid token: HTTP 401."""


class Forbidden(Exception):
    """A valid token without the right: HTTP 403."""


class LoginRefused(Exception):
    """Wrong username or password (the message never says which)."""


class LoginThrottled(Exception):
    """Too many failures for this username and source; retry after ``retry_after``."""

    def __init__(self, retry_after: float):
        super().__init__(f"too many failed logins; retry in {int(retry_after) + 1} s")
        self.retry_after = retry_after


def bearer_token(header: bytes | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
