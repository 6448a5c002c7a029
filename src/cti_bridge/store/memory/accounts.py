"""The memory twin of ``Accounts``: operators and their devices (no passwords, tokens or
login limits: the twin serves the call records, the pop and the console's contracts)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from ..accounts import (
    AccountError,
    OperatorInfo,
    check_device,
    check_password,
    check_role,
    check_username,
)
from ..records import clean_text
from .tables import Row, Tables

__all__ = ["MemoryAccounts"]


class MemoryAccounts:
    def __init__(self, tables: Tables, *, clock: Callable[[], float] = time.time) -> None:
        self._t = tables
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

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
        with self._t.lock:
            if any(o["username"] == username for o in self._t.operators.values()):
                raise AccountError(f"operator {username!r} already exists")
            operator_id = self._t.next_id("operators")
            self._t.operators[operator_id] = {
                "id": operator_id,
                "username": username,
                "name": clean_text(name, 128),
                "role": role,
                "active": active,
                "created_at": self._now(),
            }
            for device in devices:
                self._t.devices[device] = operator_id
            return self._info(self._t.operators[operator_id])

    def set_active(self, username: str, active: bool) -> None:
        with self._t.lock:
            self._operator(username)["active"] = active

    def set_role(self, username: str, role: str) -> None:
        check_role(role)
        with self._t.lock:
            self._operator(username)["role"] = role

    def bind_device(self, username: str, device: str) -> None:
        device = check_device(device)
        with self._t.lock:
            self._t.devices[device] = self._operator(username)["id"]

    def unbind_device(self, device: str) -> bool:
        with self._t.lock:
            return self._t.devices.pop(device, None) is not None

    def get_operator(self, username: str) -> OperatorInfo | None:
        with self._t.lock:
            found = [o for o in self._t.operators.values() if o["username"] == username]
            return self._info(found[0]) if found else None

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

    def _operator(self, username: str) -> Row:
        for row in self._t.operators.values():
            if row["username"] == username:
                return row
        raise AccountError(f"no operator {username!r}")

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
