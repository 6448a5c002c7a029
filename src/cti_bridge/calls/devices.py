"""Devices, and which of them are "outside": the vocabulary the call model reasons in.

A *device* is what a helpdesk means by "a phone" (PRODUCT.md): the channel name without
Asterisk's per-call suffix. Operators are bound to devices, queue members are devices, and
the trunk is a device too, so every decision the model makes about "who is this leg" goes
through these functions. They are pure string work, cached, because the model calls them
on the hot path.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

__all__ = ["Topology", "device_of_channel", "device_of_interface"]

_HEX = frozenset("0123456789abcdefABCDEF")


def device_of_channel(channel: str) -> str:
    """``PJSIP/1001-0000001d`` -> ``PJSIP/1001``; ``Local/1001@agents-000000a7;1`` ->
    ``Local/1001@agents``. A name without Asterisk's ``-%08x`` suffix is returned as is,
    so a trunk called ``PJSIP/my-trunk`` keeps its dash."""
    if channel.endswith((";1", ";2")):
        channel = channel[:-2]
    base, dash, suffix = channel.rpartition("-")
    if dash and len(suffix) >= 8 and all(ch in _HEX for ch in suffix):
        return base
    return channel


def device_of_interface(interface: str) -> str:
    """A queue member interface or dial string -> its device: ``Local/1001@agents/n`` ->
    ``Local/1001@agents`` (Local channel options after the context are dropped);
    ``PJSIP/1001`` stays ``PJSIP/1001``."""
    if interface.startswith("Local/"):
        at = interface.find("@")
        if at >= 0:
            slash = interface.find("/", at)
            if slash >= 0:
                return interface[:slash]
    return interface


def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


#: Distinct devices seen per pattern cache before it is cleared (callbacks make a new
#: ``Local/<number>@pstn-out`` device per customer; the cache must not grow with them).
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Topology:
    """What is "outside" on this PBX. Patterns are shell-style (``fnmatch``), matched
    against devices (``PJSIP/pstn``) or dialplan contexts (``from-pstn-sip``).

    The defaults fit our dialplan and the recorded traces: the SIP trunk ``PJSIP/pstn``,
    the simulated trunk ``Local/hold<N>@sim-caller`` and outbound ``Local/<n>@pstn-out``.
    """

    #: Devices that are the public network: their legs are customers, never operators.
    trunk_devices: tuple[str, ...] = (
        "PJSIP/pstn",
        "PJSIP/pstn*",
        "PJSIP/trunk*",
        "SIP/trunk*",
        "IAX2/trunk*",
        "DAHDI/*",
        "Local/*@sim-caller",
        "Local/*@pstn-out*",
    )
    #: Contexts where calls from outside enter the dialplan.
    inbound_contexts: tuple[str, ...] = (
        "from-pstn*",
        "from-trunk*",
        "from-external*",
        "from-did*",
        "sim-caller*",
        "sim-trunk*",
    )
    #: Devices whose *dialling* is the trunk delivering a call (a call file's
    #: ``Local/hold<N>@sim-caller``), not somebody's phone ringing: never a Ring.
    not_rung_devices: tuple[str, ...] = ("Local/*@sim-caller",)

    _trunk_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _inbound_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _not_rung_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _cache: dict[tuple[int, str], bool] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_trunk_re", _matcher(self.trunk_devices))
        object.__setattr__(self, "_inbound_re", _matcher(self.inbound_contexts))
        object.__setattr__(self, "_not_rung_re", _matcher(self.not_rung_devices))

    def _match(self, which: int, pattern: re.Pattern[str] | None, value: str) -> bool:
        key = (which, value)
        hit = self._cache.get(key)
        if hit is None:
            hit = bool(pattern is not None and pattern.match(value))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def is_trunk(self, device: str) -> bool:
        return self._match(0, self._trunk_re, device)

    def is_inbound_context(self, context: str) -> bool:
        return self._match(1, self._inbound_re, context)

    def is_not_rung(self, device: str) -> bool:
        return self._match(2, self._not_rung_re, device)
