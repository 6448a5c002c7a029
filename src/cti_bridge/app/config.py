"""The daemon's configuration: one TOML file, secrets from the environment.

A bad config stops start-up with one line that names the key (``pbx[0].secret_env:
environment variable CTI_AMI_SECRET is not set``), never a traceback: the person who
runs the PBX reads it in a service log.
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cti_bridge.dialer.policy import DAYS, Policy, Range, holiday_calendar, parse_hours
from cti_bridge.web.clients import Network, normal_origin, parse_networks

__all__ = [
    "AgreementsConfig",
    "CallHistory",
    "Config",
    "ConfigError",
    "DialerConfig",
    "DialerHoursConfig",
    "KpisConfig",
    "MissedCallsConfig",
    "NodeConfig",
    "QueuesConfig",
    "WorkloadConfig",
    "load_config",
    "parse_config",
]

ENV_CONFIG = "CTI_BRIDGE_CONFIG"


class ConfigError(Exception):
    """A configuration problem, phrased as one line that names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Annotated[int, Field(ge=0, le=65535)]

#: ``[web] call_history``: which ended calls an operator reads (docs/security.md).
CallHistory = Literal["shared", "own"]


class WebConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    #: Hours a login token stays valid.
    token_ttl_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12.0
    #: Failed logins per username and source within ``login_window_seconds`` before refusal.
    login_max_failures: Annotated[int, Field(ge=1)] = 5
    #: Failed logins per username (any source), and per source (any username), within the
    #: window before that username or source is *hot*: one try per username and source
    #: then (docs/security.md).
    login_max_failures_per_account: Annotated[int, Field(ge=1)] = 20
    login_max_failures_per_source: Annotated[int, Field(ge=1)] = 50
    login_window_seconds: Annotated[float, Field(gt=0)] = 300.0
    #: Which calls an operator sees (docs/security.md): "shared", every ended call (the
    #: helpdesk's history, notes included) and the live calls they are on or rung for;
    #: "own", only the calls they were rung for, answered or talked on, live or ended.
    #: Supervisors and admins see every call either way.
    call_history: CallHistory = "shared"
    #: Proxies (addresses or CIDR networks) whose ``X-Forwarded-For`` names the client.
    trusted_proxies: tuple[str, ...] = ()
    #: A bearer token monitoring presents for ``/metrics`` and ``/healthz``'s detail;
    #: unset, both are open (docs/security.md, "Health and metrics").
    status_token: Annotated[str, Field(min_length=16)] | None = Field(default=None, repr=False)
    status_token_env: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _resolve_status_token(cls, data: Any) -> Any:
        return _token_from_env(data, "status_token")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, values: Any) -> Any:
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
            raise ValueError('must be a list of addresses or networks, e.g. ["10.0.0.1"]')
        parse_networks(values)
        return values

    #: Origins (``scheme://host[:port]``) besides the daemon's own whose pages may open
    #: the screens' WebSocket (docs/security.md).
    allowed_origins: tuple[str, ...] = ()

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, values: Any) -> Any:
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
            raise ValueError('must be a list of origins, e.g. ["https://wallboard.example"]')
        for value in values:
            if normal_origin(value) is None:
                raise ValueError(f"{value!r} is not an origin (scheme://host[:port], no path)")
        return values

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)


class DatabaseConfig(_Section):
    url: str = "sqlite:///cti-bridge.sqlite3"
    #: Threads that run database work off the reactor (API, token checks, health).
    pool_size: Annotated[int, Field(ge=1, le=64)] = 4
    #: Threads of the screen-pop context builds alone: nothing else queues ahead of a ring.
    pop_threads: Annotated[int, Field(ge=1, le=16)] = 2
    #: Events held in memory while the database is unreachable before refusing more.
    max_pending_events: Annotated[int, Field(ge=100)] = 200_000
    #: The call records' durable spool (docs/storage.md, "The spool"): a directory, or
    #: "" for none. Unset: next to a SQLite file (``<file>-spool``), else
    #: ``cti-bridge-<node name>-spool`` in the working directory.
    spool_dir: str | None = None
    #: The spool's size on disk before it refuses events (loudly).
    spool_max_bytes: Annotated[int, Field(ge=4096)] = 256 * 1024 * 1024

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "sqlite+", "postgresql:", "postgresql+")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return url


class BusConfig(_Section):
    url: str = "memory://"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://host:port/db")
        return url


class PhoneConfig(_Section):
    default_region: str = "BE"

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{region!r} is not an ISO 3166 region phonenumbers knows")
        return region.upper()


class PbxConfig(_Section):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    host: str = "127.0.0.1"
    port: Port = 5038
    username: Annotated[str, Field(min_length=1)]
    secret: str | None = Field(default=None, repr=False)
    secret_env: str | None = None
    #: ``md5`` logs in with the challenge, so the secret never crosses the wire.
    auth: Literal["plain", "md5"] = "md5"
    ping_interval: Annotated[float, Field(gt=0)] = 20.0
    #: After a Ping, how long a silent link may stay silent before it is dropped.
    ping_timeout: Annotated[float, Field(gt=0)] = 10.0
    action_timeout: Annotated[float, Field(gt=0)] = 10.0
    #: Device patterns that are the outside world (trunks), e.g. "PJSIP/pstn".
    trunks: tuple[str, ...] = ()
    #: Dialplan contexts where calls from outside enter.
    inbound_contexts: tuple[str, ...] = ()
    #: The PBX's manager.conf, where this host can read it: ``cti-bridge check-config``
    #: checks the AMI user's permissions and where AMI listens (the daemon never reads it).
    manager_conf: str | None = None
    #: Where the PBX writes its own CDRs (``cdr_pgsql``; see docs/asterisk.md): read after
    #: every resync for the calls that began and ended while no link listened (a takeover,
    #: a reconnect, a restart). ``None``: not read.
    cdr_url: str | None = Field(default=None, repr=False)
    cdr_table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")] = "cdr"
    #: How far back a resync looks in the CDRs for calls without a record.
    cdr_lookback_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 3600.0

    @model_validator(mode="before")
    @classmethod
    def _resolve_secret(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        secret, env = data.get("secret"), data.get("secret_env")
        if secret is not None and env is not None:
            raise ValueError("give secret or secret_env, not both")
        if env is not None:
            if not isinstance(env, str) or not env:
                raise ValueError("secret_env must name an environment variable")
            value = os.environ.get(env)
            if value is None:
                raise _KeyError("secret_env", f"environment variable {env} is not set")
            data = {**data, "secret": value}
        elif secret is None:
            raise _KeyError("secret_env", "missing: set secret_env (or secret)")
        return data

    @property
    def address(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


class AgiConfig(_Section):
    """The service token ``dialplans/agi/caller_lookup.py`` presents to ``/api/agi/lookup``.
    Without one the endpoint is off (404)."""

    token: str | None = Field(default=None, repr=False)
    token_env: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _resolve_token(cls, data: Any) -> Any:
        return _token_from_env(data, "token")


def _token_from_env(data: Any, key: str) -> Any:
    """``<key>_env = "VAR"``: the service token ``key`` read from the environment (at
    least 16 characters), so that it need not be written in the file."""
    env_key = f"{key}_env"
    if not isinstance(data, dict) or data.get(env_key) is None:
        return data
    if data.get(key) is not None:
        raise ValueError(f"give {key} or {env_key}, not both")
    env = data[env_key]
    value = os.environ.get(env) if isinstance(env, str) and env else None
    if not value:
        raise _KeyError(env_key, f"environment variable {env} is not set")
    if len(value) < 16:
        raise _KeyError(env_key, f"the token in {env} is shorter than 16 characters")
    return {**data, key: value}


class DialerHoursConfig(_Section):
    """``[dialer.hours]``: calling ranges per weekday in local time, e.g. ``"08:00-18:00"`` or
    ``"08:00-12:00,13:00-18:00"``; ``"00:00-24:00"`` is the whole day; an absent day has
    none. Without the table: Monday to Friday 08:00-18:00."""

    mon: str | None = None
    tue: str | None = None
    wed: str | None = None
    thu: str | None = None
    fri: str | None = None
    sat: str | None = None
    sun: str | None = None

    @field_validator(*DAYS)
    @classmethod
    def _ranges(cls, text: str | None) -> str | None:
        if text is not None:
            parse_hours(text)
        return text

    @property
    def weekly(self) -> tuple[tuple[Range, ...], ...]:
        """Seven days of ranges, Monday first."""
        return tuple(parse_hours(getattr(self, day) or "") for day in DAYS)


_OFFICE_HOURS = DialerHoursConfig(**dict.fromkeys(DAYS[:5], "08:00-18:00"))


class DialerConfig(_Section):
    """``[dialer]``: the callback dialer (off unless ``enabled``). See docs/dialer.md."""

    enabled: bool = False
    #: Dialplan context the customer's number is dialled in once the operator answered.
    context: Annotated[str, Field(min_length=1)] = "callback"
    number_format: Literal["e164", "national", "international"] = "national"
    operator_ring_seconds: Annotated[float, Field(gt=0)] = 20.0
    max_attempts: Annotated[int, Field(ge=1)] = 3
    retry_seconds: Annotated[tuple[Annotated[float, Field(gt=0)], ...], Field(min_length=1)] = (
        600.0,
        1800.0,
    )
    owner_grace_seconds: Annotated[float, Field(ge=0)] = 900.0
    timezone: str = "Europe/Brussels"
    holidays: str = "BE"
    hours: DialerHoursConfig = _OFFICE_HOURS
    #: How often the dialer looks for due callbacks (it is also woken when one changes).
    pass_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not an IANA time zone") from None
        return name

    @field_validator("holidays")
    @classmethod
    def _known_country(cls, country: str) -> str:
        holiday_calendar(country)  # raises ValueError naming the country
        return country.upper()

    def policy(self) -> Policy:
        """The pure policy these settings describe."""
        return Policy(
            hours=self.hours.weekly,
            timezone=self.timezone,
            holidays=holiday_calendar(self.holidays),
            max_attempts=self.max_attempts,
            retry_seconds=self.retry_seconds,
            owner_grace_seconds=self.owner_grace_seconds,
        )


class AgreementsConfig(_Section):
    """``[agreements]``: the promise book."""

    #: The deadline of an agreement made without one, in business hours, when the
    #: customer has no contract with a service level.
    default_service_hours: Annotated[float, Field(gt=0)] = 8.0


#: Why an operator may step out of the queues, unless ``[queues] pause_reasons`` says.
DEFAULT_PAUSE_REASONS = ("break", "lunch", "training", "back office")


class QueuesConfig(_Section):
    """``[queues]``: the supervisors' live view."""

    #: The reasons an operator can be paused with (``POST /api/agents/{operator}/pause``).
    pause_reasons: tuple[str, ...] = DEFAULT_PAUSE_REASONS

    @field_validator("pause_reasons")
    @classmethod
    def _sane_reasons(cls, reasons: tuple[str, ...]) -> tuple[str, ...]:
        if not reasons:
            raise ValueError("give at least one reason")
        for reason in reasons:
            if reason != reason.strip() or not reason or len(reason) > 64:
                raise ValueError(f"{reason!r}: a reason is 1-64 characters, no edge spaces")
            if not reason.isprintable():
                raise ValueError(f"{reason!r}: a reason is printable text (it goes to the PBX)")
        if len(set(reasons)) != len(reasons):
            raise ValueError("a reason is listed twice")
        return reasons


class WorkloadConfig(_Section):
    """``[workload]``: the operators' load. See docs/queues.md ("Wrap-up and breaks").

    The wrap-up itself is the queues' ``wrapuptime`` in ``queues.conf`` (Asterisk keeps
    it, and sends it nowhere): these values must say the same, so that the live view
    and the dialer know when the wrap-up ends."""

    #: Seconds of wrap-up after each queue call, for every queue (0: none).
    wrapup_seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0
    #: Per queue, where it differs from ``wrapup_seconds``.
    wrapup_queues: dict[str, Annotated[float, Field(ge=0, le=3600)]] = Field(default_factory=dict)
    #: Remind the operator and the supervisors after this long on duty without a break
    #: (and again after each further period); 0: no reminders.
    break_after_minutes: Annotated[float, Field(ge=0, le=24 * 60)] = 120.0
    #: A pause (any reason) or an absence at least this long is a break.
    break_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 5.0


class MissedCallsQueueConfig(_Section):
    """``[missed_calls.queues.<name>]``: one queue's own settings; a key left out takes
    the ``[missed_calls]`` value."""

    enabled: bool | None = None
    min_wait_seconds: Annotated[float, Field(ge=0)] | None = None
    deadline_hours: Annotated[float, Field(gt=0)] | None = None


class MissedCallsConfig(_Section):
    """``[missed_calls]``: a queue call abandoned after waiting at least
    ``min_wait_seconds`` becomes a callback agreement by itself (off by default)."""

    enabled: bool = False
    min_wait_seconds: Annotated[float, Field(ge=0)] = 30.0
    #: The callback's deadline, in business hours after the call.
    deadline_hours: Annotated[float, Field(gt=0)] = 4.0
    queues: dict[str, MissedCallsQueueConfig] = Field(default_factory=dict)

    def for_queue(self, queue: str) -> tuple[bool, float, float]:
        """``(enabled, min_wait_seconds, deadline_hours)`` for ``queue``."""
        own = self.queues.get(queue, MissedCallsQueueConfig())
        return (
            self.enabled if own.enabled is None else own.enabled,
            self.min_wait_seconds if own.min_wait_seconds is None else own.min_wait_seconds,
            self.deadline_hours if own.deadline_hours is None else own.deadline_hours,
        )


class NodeConfig(_Section):
    """``[node]``: this process among several (PRODUCT.md). ``all`` and ``owner`` take
    the PBXs' leases (with ``[bus] url`` on Redis; with the in-process bus the node owns
    every PBX) and run each PBX link only while they own it; ``web`` never starts a PBX
    link or the dialer (docs/architecture.md, "Several nodes")."""

    name: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default_factory=lambda: socket.gethostname()[:64] or "node"
    )
    role: Literal["all", "owner", "web"] = "all"


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class KpisQueueConfig(_Section):
    """``[kpis.queues.<name>]``: one queue's own thresholds; a key left out takes the
    ``[kpis]`` value."""

    service_level_seconds: Annotated[float, Field(gt=0, le=86400)] | None = None
    short_abandon_seconds: Annotated[float, Field(ge=0, le=86400)] | None = None
    wrapup_seconds: Annotated[float, Field(ge=0, le=86400)] | None = None
    service_level_target: Annotated[float, Field(gt=0, le=1)] | None = None


class KpisConfig(_Section):
    """``[kpis]``: the thresholds of the supervisors' figures (docs/kpis.md)."""

    #: Answered within this many seconds of waiting counts towards the service level.
    service_level_seconds: Annotated[float, Field(gt=0, le=86400)] = 20.0
    #: An abandon after less waiting than this is a short abandon, reported apart.
    short_abandon_seconds: Annotated[float, Field(ge=0, le=86400)] = 5.0
    #: Wrap-up seconds added to every answered call's talk time in the handle time (the
    #: records store no wrap-up).
    wrapup_seconds: Annotated[float, Field(ge=0, le=86400)] = 0.0
    #: The service level aimed at, a share of the answered calls (0.8: 80 %).
    service_level_target: Annotated[float, Field(gt=0, le=1)] = 0.8
    queues: dict[str, KpisQueueConfig] = Field(default_factory=dict)

    def for_queue(self, queue: str) -> tuple[float, float, float, float]:
        """``(service_level_seconds, short_abandon_seconds, wrapup_seconds,
        service_level_target)`` for ``queue``."""
        own = self.queues.get(queue, KpisQueueConfig())
        return (
            self.service_level_seconds
            if own.service_level_seconds is None
            else own.service_level_seconds,
            self.short_abandon_seconds
            if own.short_abandon_seconds is None
            else own.short_abandon_seconds,
            self.wrapup_seconds if own.wrapup_seconds is None else own.wrapup_seconds,
            self.service_level_target
            if own.service_level_target is None
            else own.service_level_target,
        )


class Config(_Section):
    web: WebConfig = WebConfig()
    database: DatabaseConfig = DatabaseConfig()
    bus: BusConfig = BusConfig()
    phone: PhoneConfig = PhoneConfig()
    pbx: tuple[PbxConfig, ...] = ()
    agi: AgiConfig = AgiConfig()
    dialer: DialerConfig = DialerConfig()
    agreements: AgreementsConfig = AgreementsConfig()
    queues: QueuesConfig = QueuesConfig()
    workload: WorkloadConfig = WorkloadConfig()
    missed_calls: MissedCallsConfig = MissedCallsConfig()
    kpis: KpisConfig = KpisConfig()
    node: NodeConfig = NodeConfig()
    log: LogConfig = LogConfig()

    @field_validator("pbx")
    @classmethod
    def _unique_names(cls, pbxes: tuple[PbxConfig, ...]) -> tuple[PbxConfig, ...]:
        names = [p.name for p in pbxes]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two [[pbx]] entries are named {name!r}")
        return pbxes


class _KeyError(ValueError):
    """A validation error that belongs to a specific key inside the section."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


def _format_error(error: ValidationError) -> str:
    first = error.errors()[0]
    parts: list[str] = []
    for item in first["loc"]:
        if isinstance(item, int) and parts:
            parts[-1] += f"[{item}]"
        else:
            parts.append(str(item))
    message = first["msg"]
    ctx = first.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, _KeyError):
        parts.append(cause.key)
        message = cause.message
    elif first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "missing"
    message = message.removeprefix("Value error, ")
    where = ".".join(parts) or "(top level)"
    return f"{where}: {message}"


def parse_config(data: dict[str, Any], *, source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {_format_error(error)}") from None


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read the TOML file (or ``$CTI_BRIDGE_CONFIG``); every problem is a ConfigError."""
    if path is None:
        path = os.environ.get(ENV_CONFIG)
        if not path:
            raise ConfigError(f"no config file: pass --config FILE or set {ENV_CONFIG}")
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise ConfigError(f"{file}: cannot read: {error.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from None
    return parse_config(data, source=str(file))
