"""Whether the operators' phones can be rung: registered, unreachable, unregistered (pure).

A queue skips a member whose phone is gone without any event (pjsip trace 07), so the
supervisor and the operator must be told the phone is gone before the calls go elsewhere.

For a ``PJSIP/<endpoint>`` device the answer is the endpoint's contacts:

- at every (re)connect ``PJSIPShowEndpoints`` lists every endpoint with its contacts
  (static and registered alike: ``Contacts: 1001/sip:1001@127.0.0.1:5171,``) and its
  ``DeviceState`` (``Unavailable`` when no contact answers qualify; ``Not in use``,
  ``In use``, ... otherwise). ``PJSIPShowContacts`` is no substitute: Asterisk 22 lists
  only registered contacts there, and answers ``Response: Error`` ("No Contacts found")
  when there are none;
- live, ``ContactStatus`` (``URI``, ``AOR``, ``EndpointName``, ``ContactStatus``):
  ``Reachable``/``Unreachable`` from qualify; ``NonQualified`` (an AOR without
  qualify), ``Created``, ``Updated``, ``Unknown`` for a contact that exists but has not
  been qualified; ``Removed`` when a registration ends (REGISTER ``Expires: 0``, expiry).

A device is ``registered`` when one of its contacts is reachable or not qualified (a
fresh registration is the phone's own word that it is there), ``unreachable`` when it
has contacts and none answers, ``unregistered`` when it has none (or the PBX has no such
endpoint), ``unknown`` before the list has come after a (re)connect, and after the link
is lost: everything is forgotten then.

Any other device (``Local/1001@agents``), and a PJSIP one when the PBX refuses the
endpoint list (no chan_pjsip; the demo PBX), is judged by the device state the members
board keeps: ``UNAVAILABLE``/``INVALID`` unreachable, ``UNKNOWN`` or none yet unknown,
anything else registered. A Local device says nothing about the phone behind it.

``PhoneStates`` keeps one state per (PBX, bound device) with ``since`` (node clock):
computed again whenever the contacts, the device's state or the device map change, and
returning what changed so that the pushes tell the screens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "PHONE_EVENTS",
    "PHONE_STATES",
    "Contacts",
    "PhoneChange",
    "PhoneState",
    "PhoneStates",
    "state_from_device",
]

Msg = Mapping[str, str]

PHONE_STATES = ("registered", "unreachable", "unregistered", "unknown")
#: The live events ``Contacts.feed`` acts on.
PHONE_EVENTS = frozenset({"ContactStatus", "Shutdown"})

#: A contact in one of these states has not been qualified (yet): it is there.
_NOT_QUALIFIED = frozenset({"NonQualified", "Created", "Updated", "Unknown", "Listed"})
_DEVICE_UNREACHABLE = frozenset({"UNAVAILABLE", "INVALID"})
_PREFIX = "PJSIP/"


def state_from_device(raw: str | None) -> str:
    """A phone's state from a device state (``DeviceStateChange``'s words)."""
    if raw is None or raw == "UNKNOWN":
        return "unknown"
    return "unreachable" if raw in _DEVICE_UNREACHABLE else "registered"


@dataclass(slots=True)
class _Endpoint:
    contacts: dict[str, str] = field(default_factory=dict)  # URI -> ContactStatus word
    updated_at: float = float("-inf")  # the last live event about it


class Contacts:
    """The PJSIP endpoints of one PBX and their contacts. Methods return the devices
    (``PJSIP/<endpoint>``) whose contacts changed; ``None``: maybe all of them."""

    def __init__(self, pbx: str):
        self.pbx = pbx
        #: ``waiting`` (no list since the last (re)connect), ``listed`` or ``refused``.
        self.listing = "waiting"
        self._endpoints: dict[str, _Endpoint] = {}
        self.counts = {"events": 0, "lists": 0, "refused": 0, "resets": 0}

    def reset(self) -> None:
        """The link is lost (or a new one starts): nothing here is known any more."""
        self._endpoints.clear()
        self.listing = "waiting"
        self.counts["resets"] += 1

    def listed(self, items: Iterable[Msg], asked_at: float) -> None:
        """A ``PJSIPShowEndpoints`` answer asked at ``asked_at``: every endpoint, unless a
        live ``ContactStatus`` since then already said newer."""
        listed: dict[str, _Endpoint] = {}
        for item in items:
            name = item.get("ObjectName")
            if not name:
                continue
            known = self._endpoints.get(name)
            if known is not None and known.updated_at >= asked_at:
                listed[name] = known
                continue
            gone = item.get("DeviceState") in ("Unavailable", "Invalid")
            word = "Unreachable" if gone else "Listed"
            contacts = {}
            for contact in (item.get("Contacts") or "").split(","):
                _, _, uri = contact.strip().partition("/")
                if uri:
                    contacts[uri] = word
            listed[name] = _Endpoint(contacts)
        for name, known in self._endpoints.items():  # heard of live only, after asking
            if name not in listed and known.updated_at >= asked_at:
                listed[name] = known
        self._endpoints = listed
        self.listing = "listed"
        self.counts["lists"] += 1

    def refused(self) -> None:
        """The PBX would not list its endpoints: PJSIP devices go by their device state."""
        self.listing = "refused"
        self.counts["refused"] += 1

    def feed(self, msg: Msg, at: float) -> frozenset[str] | None:
        event = msg.get("Event")
        if event == "Shutdown":
            self.reset()
            return None
        if event != "ContactStatus":
            return frozenset()
        self.counts["events"] += 1
        name, uri, word = msg.get("EndpointName"), msg.get("URI"), msg.get("ContactStatus")
        if not name or not uri or not word:
            return frozenset()
        endpoint = self._endpoints.setdefault(name, _Endpoint())
        endpoint.updated_at = at
        if word == "Removed":
            endpoint.contacts.pop(uri, None)
        else:
            endpoint.contacts[uri] = word
        return frozenset({_PREFIX + name})

    def state(self, device: str) -> str | None:
        """The phone's state from its contacts; ``None``: the contacts do not say (not a
        PJSIP device, or the PBX refused the list)."""
        if not device.startswith(_PREFIX) or self.listing == "refused":
            return None
        if self.listing == "waiting":
            return "unknown"
        endpoint = self._endpoints.get(device.removeprefix(_PREFIX))
        words = endpoint.contacts.values() if endpoint is not None else ()
        if any(w == "Reachable" or w in _NOT_QUALIFIED for w in words):
            return "registered"
        return "unreachable" if words else "unregistered"

    def contacts_of(self, device: str) -> int:
        endpoint = self._endpoints.get(device.removeprefix(_PREFIX))
        return 0 if endpoint is None else len(endpoint.contacts)


@dataclass(frozen=True, slots=True)
class PhoneState:
    pbx: str
    device: str
    operator: str
    state: str
    since: float


@dataclass(frozen=True, slots=True)
class PhoneChange:
    """A phone's state changed (``before`` ``None``: first seen)."""

    phone: PhoneState
    before: str | None


class PhoneStates:
    """Every bound device's phone on every PBX, with ``since``.

    ``device_state(pbx, device)`` reads the members board's raw device state (``None``:
    none known); ``owners`` is the device -> username map.
    """

    def __init__(self, device_state: Callable[[str, str], str | None]):
        self._device_state = device_state
        self.contacts: dict[str, Contacts] = {}
        self._owners: dict[str, str] = {}
        self._kept: dict[tuple[str, str], PhoneState] = {}

    def add(self, contacts: Contacts) -> None:
        self.contacts[contacts.pbx] = contacts

    def set_owners(self, owners: Mapping[str, str], at: float) -> list[PhoneChange]:
        self._owners = dict(owners)
        for key in [key for key in self._kept if key[1] not in self._owners]:
            del self._kept[key]
        return [change for pbx in self.contacts for change in self.changed(pbx, None, at)]

    def changed(self, pbx: str, devices: Iterable[str] | None, at: float) -> list[PhoneChange]:
        """These devices of ``pbx`` (``None``: all bound ones) may have changed at ``at``."""
        contacts = self.contacts.get(pbx)
        if contacts is None:
            return []
        chosen = self._owners if devices is None else [d for d in devices if d in self._owners]
        changes: list[PhoneChange] = []
        for device in sorted(chosen):
            state = contacts.state(device)
            if state is None:
                state = state_from_device(self._device_state(pbx, device))
            kept = self._kept.get((pbx, device))
            operator = self._owners[device]
            if kept is not None and kept.state == state and kept.operator == operator:
                continue
            since = kept.since if kept is not None and kept.state == state else at
            phone = PhoneState(pbx, device, operator, state, since)
            self._kept[(pbx, device)] = phone
            changes.append(PhoneChange(phone, None if kept is None else kept.state))
        return changes

    def devices_of(self, usernames: Iterable[str]) -> list[str]:
        wanted = set(usernames)
        return sorted(d for d, user in self._owners.items() if user in wanted)

    def phones(self, pbx: str | None = None) -> list[PhoneState]:
        """By PBX, then device."""
        return [self._kept[k] for k in sorted(self._kept) if pbx is None or k[0] == pbx]

    def of_operator(self, username: str) -> list[PhoneState]:
        """By PBX, then device (only the operator's own are sorted: it runs per agent push)."""
        keys = sorted(k for k, p in self._kept.items() if p.operator == username)
        return [self._kept[k] for k in keys]
