#!/usr/bin/env python3
"""AGI caller lookup for the helpdesk dialplan (pyst2): who is calling, before the queue.

Asks cti-bridge (``GET /api/agi/lookup?number=``, service token) about the caller's
number and sets channel variables that the dialplan then uses:

  CTI_LOOKUP         known | unknown | failed      (always set when the script ran)
  CTI_CUSTOMER_ID    cti-bridge's customer id      (digits)
  CTI_CUSTOMER_NAME  the customer's name, reduced to letters, digits, space and .'-
  CTI_LANGUAGE       e.g. nl, fr, fr_BE            (-> CHANNEL(language))
  CTI_TIER           e.g. premium                  (letters, digits, _ and -)
  CTI_PRIORITY       0..100, higher first          (-> QUEUE_PRIO)

The call must never suffer for it: the whole lookup has one deadline (0.5 s by default,
connect and read together), any failure sets CTI_LOOKUP=failed and nothing else, and the
script always ends successfully. Values are reduced to safe characters before they reach
the channel, because the dialplan substitutes them into application arguments.

Run as:
  AGI(caller_lookup.py)                     process AGI from astagidir (needs python3 and
                                            pyst2 on the PBX host)
  AGI(agi://HOST:4573/caller_lookup)        FastAGI: this script serving on HOST with
                                            ``caller_lookup.py --fastagi HOST:4573``

Settings (environment first, then the file named by CTI_AGI_CONFIG, default
/etc/asterisk/cti-bridge-agi.conf, with ``key = value`` lines):
  url (CTI_BRIDGE_URL)            cti-bridge's base URL, default http://127.0.0.1:8080
  token (CTI_AGI_TOKEN)           the service token; or token_file (CTI_AGI_TOKEN_FILE)
  timeout (CTI_AGI_TIMEOUT)       seconds for the whole lookup, default 0.5

Only the standard library and pyst2 are used, so the script runs on the PBX without
cti-bridge installed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import sys
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

DEFAULT_CONFIG = "/etc/asterisk/cti-bridge-agi.conf"
DEFAULTS = {"url": "http://127.0.0.1:8080", "token": "", "token_file": "", "timeout": "0.5"}
ENVIRONMENT = {
    "url": "CTI_BRIDGE_URL",
    "token": "CTI_AGI_TOKEN",
    "token_file": "CTI_AGI_TOKEN_FILE",
    "timeout": "CTI_AGI_TIMEOUT",
}
MAX_RESPONSE = 64 * 1024

_NUMBER = re.compile(r"\+?[0-9][0-9 ()./-]{1,39}")
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{16,512}")
_NAME_DROP = re.compile(r"[^\w .'-]+")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Za-z0-9]{2,4})?")
_TIER = re.compile(r"[A-Za-z0-9_-]{1,32}")


# --- settings ---------------------------------------------------------------------------


def load_settings(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    settings = dict(DEFAULTS)
    path = environ.get("CTI_AGI_CONFIG", DEFAULT_CONFIG)
    try:
        with open(path, encoding="utf-8") as file:
            for line in file:
                key, sep, value = line.partition("=")
                key = key.strip().lower()
                if sep and key in DEFAULTS and not key.startswith("#"):
                    settings[key] = value.strip()
    except OSError:
        pass  # no file: environment and defaults
    for key, variable in ENVIRONMENT.items():
        if environ.get(variable):
            settings[key] = environ[variable]
    if settings["token_file"] and not settings["token"]:
        try:
            with open(settings["token_file"], encoding="utf-8") as file:
                settings["token"] = file.read().strip()
        except OSError:
            settings["token"] = ""
    return settings


# --- asking cti-bridge ------------------------------------------------------------------------


def lookup(number: str, settings: Mapping[str, str]) -> dict[str, Any] | None:
    """cti-bridge's answer for ``number``, or None on any problem (within the deadline)."""
    try:
        timeout = min(max(float(settings.get("timeout", "0.5")), 0.05), 5.0)
        token = settings.get("token", "")
        if not _TOKEN.fullmatch(token):
            return None
        query = urllib.parse.urlencode({"number": number})
        url = settings.get("url", DEFAULTS["url"]).rstrip("/") + "/api/agi/lookup?" + query
        answer = http_get_json(url, token, time.monotonic() + timeout)
    except Exception:
        return None
    return answer if isinstance(answer, dict) else None


def http_get_json(url: str, token: str, deadline: float) -> Any:
    """A GET with one deadline for connect, send and read (HTTP/1.0, no redirects)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be http:// or https://")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = socket.create_connection((parts.hostname, port), timeout=_left(deadline))
    try:
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        target = parts.path + ("?" + parts.query if parts.query else "")
        request = (
            f"GET {target} HTTP/1.0\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n"
            "Connection: close\r\n\r\n"
        )
        sock.settimeout(_left(deadline))
        sock.sendall(request.encode("ascii"))
        data = b""
        while len(data) <= MAX_RESPONSE:
            sock.settimeout(_left(deadline))
            chunk = sock.recv(8192)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        raise ValueError(f"HTTP status {status[1:2]!r}")
    return json.loads(body.decode("utf-8"))


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("lookup deadline passed")
    return left


# --- what goes on the channel -------------------------------------------------------------------


def caller_number(env: Mapping[str, str]) -> str | None:
    """The caller's number as Asterisk gives it, if it looks like one."""
    raw = (env.get("agi_callerid") or "").strip()
    return raw if _NUMBER.fullmatch(raw) else None


def clean_name(name: object) -> str | None:
    if not isinstance(name, str):
        return None
    text = " ".join(_NAME_DROP.sub(" ", name.replace("_", " ")).split())[:64].strip()
    return text or None


def variables_for(profile: Mapping[str, Any] | None) -> dict[str, str]:
    """Channel variables from cti-bridge's answer; only values that are safe to substitute."""
    if profile is None:
        return {"CTI_LOOKUP": "failed"}
    variables = {"CTI_LOOKUP": "known" if profile.get("known") is True else "unknown"}
    priority = profile.get("priority")
    if isinstance(priority, int) and not isinstance(priority, bool):
        variables["CTI_PRIORITY"] = str(min(max(priority, 0), 100))
    if variables["CTI_LOOKUP"] != "known":
        return variables
    customer_id = profile.get("customer_id")
    if isinstance(customer_id, int) and not isinstance(customer_id, bool) and customer_id > 0:
        variables["CTI_CUSTOMER_ID"] = str(customer_id)
    name = clean_name(profile.get("name"))
    if name:
        variables["CTI_CUSTOMER_NAME"] = name
    language = profile.get("language")
    if isinstance(language, str) and _LANGUAGE.fullmatch(language.replace("-", "_")):
        variables["CTI_LANGUAGE"] = language.replace("-", "_")
    tier = profile.get("tier")
    if isinstance(tier, str) and _TIER.fullmatch(tier):
        variables["CTI_TIER"] = tier
    return variables


def handle(agi: Any, settings: Mapping[str, str]) -> dict[str, str]:
    """One call: look the caller up and set the variables; returns what was set."""
    number = caller_number(agi.env)
    if number is None:  # withheld or not a number: nothing to ask
        variables = {"CTI_LOOKUP": "unknown", "CTI_PRIORITY": "0"}
    else:
        variables = variables_for(lookup(number, settings))
    for name, value in variables.items():
        agi.set_variable(name, value)
    return variables


# --- running ---------------------------------------------------------------------------------


def run_process_agi() -> int:
    """``AGI(caller_lookup.py)``: Asterisk talks to us on stdin/stdout."""
    try:
        from asterisk.agi import AGI  # noqa: PLC0415 - pyst2; missing means no lookup

        with open(os.devnull, "w", encoding="utf-8") as quiet:
            # pyst2 echoes the AGI environment (caller ID!) to stderr; keep it out of logs.
            handle(AGI(stderr=quiet), load_settings())
    except Exception:  # noqa: S110 - never fail the call
        pass
    return 0


def serve_fastagi(address: str, settings: Mapping[str, str]) -> None:
    """``agi://HOST:PORT/...``: one forked child per call (pyst2 needs the main thread)."""
    import socketserver  # noqa: PLC0415

    from asterisk.agi import AGI  # noqa: PLC0415

    host, _, port = address.rpartition(":")

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(10)
            reader = self.request.makefile("r", encoding="utf-8", errors="replace", newline="\n")
            writer = self.request.makefile("w", encoding="utf-8", newline="\n")
            try:
                with open(os.devnull, "w", encoding="utf-8") as quiet:
                    handle(AGI(stdin=reader, stdout=writer, stderr=quiet), settings)
            except Exception:  # noqa: S110 - a broken call must not stop the server
                pass
            finally:
                reader.close()
                writer.close()

    class Server(socketserver.ForkingTCPServer):
        allow_reuse_address = True

    with Server((host or "127.0.0.1", int(port)), Handler) as server:
        bound_host, bound_port = server.server_address[:2]
        print(f"caller_lookup: FastAGI on {bound_host!s}:{bound_port}", flush=True)
        server.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[1] == "--fastagi":
        serve_fastagi(argv[2], load_settings())
        return 0
    return run_process_agi()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
