"""Logging for the whole daemon: one JSON object per line, no secrets, no forged lines.

Everything ends up in the same stream and format: structlog loggers, the standard
library's ``logging`` (SQLAlchemy, alembic, ...) and Twisted's own log (unhandled errors
in Deferreds, connection noise). Two processors run on every entry, whoever wrote it:

* **redaction**: values under keys that name a credential (``secret``, ``password``,
  ``token``, ``key``, ...), at any depth, become ``"***"``; and every value registered
  with :func:`register_secret` (the AMI secret, database passwords) is cut out of
  every string, also out of exception text and tracebacks. In any text, a URI's
  ``token=`` value (``/ws?token=...``) and a ``Bearer`` or Authorization credential become
  ``***`` too, whoever logs the URI or the header (Twisted's request repr, a library).
* **control characters escaped**: caller ID is attacker text. A caller name with CR/LF,
  ANSI escapes or Unicode line/bidi controls must not forge or hide log lines, whatever
  renderer a site plugs in later.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, ClassVar, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger
from twisted.logger import LogLevel, formatEvent, globalLogBeginner

__all__ = [
    "REDACTED",
    "configure_logging",
    "escape_control_characters",
    "get_logger",
    "redact_secrets",
    "register_secret",
]

REDACTED = "***"

#: Keys whose values are credentials, matched case-insensitively at any depth.
_SECRET_KEY = re.compile(
    r"secret|passw(or)?d|passphrase|token|credential|authorization|cookie|(^|[_-])key$",
    re.IGNORECASE,
)
#: A credential inside text: a URI parameter that names a token, a bearer token, an
#: Authorization header's Basic value ("basic" alone is a knowledge level, not a secret).
_SECRET_IN_TEXT = re.compile(
    r"(?P<keep>[?&;](?:access_|auth_|api_)?token="
    r"|\bBearer\s+"
    r"|\bauthorization[\"']?\s*[:=]\s*[\"']?Basic\s+)"
    r"[^\s&#;\"'<>]+",
    re.IGNORECASE,
)
#: C0/C1 controls, DEL, Unicode line/paragraph separators and bidi overrides.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: Produced by us from tracebacks: multi-line by design; JSON escapes them.
_MULTILINE_KEYS = frozenset({"exception", "stack"})

_HANDLER_TAG = "_cti_bridge_handler"


class _State:
    secrets: ClassVar[set[str]] = set()
    secret_pattern: ClassVar[re.Pattern[str] | None] = None
    twisted_attached: ClassVar[bool] = False


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach a log line, under whatever key or inside whatever text."""
    if not value or value in _State.secrets:
        return
    _State.secrets.add(value)
    # Longest first, so a secret that contains another is cut out whole.
    alternatives = sorted(_State.secrets, key=len, reverse=True)
    _State.secret_pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def _cut_credentials(text: str) -> str:
    lowered = text.lower()
    if "token=" not in lowered and "bearer" not in lowered and "authorization" not in lowered:
        return text  # the common case, without the regex
    return _SECRET_IN_TEXT.sub(lambda m: m.group("keep") + REDACTED, text)


def _scrub(value: Any, key: str | None = None) -> Any:
    if key is not None and _SECRET_KEY.search(key):
        return REDACTED
    pattern = _State.secret_pattern
    if isinstance(value, str):
        value = _cut_credentials(value)
        return pattern.sub(REDACTED, value) if pattern is not None else value
    if isinstance(value, dict):
        return {k: _scrub(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Any other object is rendered through repr() later: scrub that text now.
    text = repr(value)
    cut = _cut_credentials(text)
    if pattern is not None:
        cut = pattern.sub(REDACTED, cut)
    return value if cut == text else cut


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: see the module docstring."""
    for key in list(event_dict):
        if key == "event":
            event_dict[key] = _scrub(event_dict[key])
        elif key not in ("timestamp", "level", "logger"):
            event_dict[key] = _scrub(event_dict[key], key)
    return event_dict


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _escape(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROL.sub(_escape_char, value)
    if isinstance(value, dict):
        return {_escape(k): _escape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escape(v) for v in value]
    return value


def escape_control_characters(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: control characters in values become visible escapes."""
    for key in list(event_dict):
        if key not in _MULTILINE_KEYS:
            event_dict[key] = _escape(event_dict[key])
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


_TWISTED_LEVELS = {
    LogLevel.debug: logging.DEBUG,
    LogLevel.info: logging.INFO,
    LogLevel.warn: logging.WARNING,
    LogLevel.error: logging.ERROR,
    LogLevel.critical: logging.CRITICAL,
}


def _twisted_to_stdlib(event: MutableMapping[str, Any]) -> None:
    """Twisted's log events, into the standard library and so into our JSON lines."""
    failure = event.get("log_failure")
    level = _TWISTED_LEVELS.get(event.get("log_level", LogLevel.info), logging.INFO)
    if failure is not None or event.get("isError"):
        level = max(level, logging.ERROR)
    logger = logging.getLogger(str(event.get("log_namespace") or "twisted"))
    if not logger.isEnabledFor(level):
        return
    text = formatEvent(event)  # type: ignore[arg-type]
    extra = {"exception": failure.getTraceback()} if failure is not None else None
    logger.log(level, text or "twisted log event", extra=extra)


def configure_logging(level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """Route structlog, stdlib logging and Twisted's log into JSON lines on ``stream``.

    Each line has ``timestamp`` (ISO 8601, UTC), ``level``, ``event`` and ``logger``
    plus the entry's own keys. Calling it again replaces the previous set-up (tests
    do; the daemon calls it once at start-up).
    """
    if isinstance(level, str):
        level = logging.getLevelNamesMapping()[level.upper()]
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(allow=("exception",))],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            escape_control_characters,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_TAG, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_TAG, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Modules bind their loggers at import time; reconfiguring must reach them.
        cache_logger_on_first_use=False,
    )

    if not _State.twisted_attached:
        # Once per process: Twisted's start-up buffer would otherwise keep printing
        # critical events to stderr in its own format. Python warnings come along.
        globalLogBeginner.beginLoggingTo(
            [_twisted_to_stdlib],  # type: ignore[list-item]
            discardBuffer=True,
            redirectStandardIO=False,
        )
        _State.twisted_attached = True
