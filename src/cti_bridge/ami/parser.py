"""The AMI wire format: bytes in, messages out, and actions back to bytes.

Pure code with no Twisted in it, so the same parser serves the live link, the trace
replays in the tests and the benchmarks. It is written for what real links deliver:

* reads split anywhere, also inside a UTF-8 character (only whole messages are
  decoded);
* bytes that are not UTF-8: a cp1252/latin-1 caller name comes through readable
  instead of crashing the link;
* the ``Asterisk Call Manager/x.y.z`` banner, which is a line of its own with no
  blank line after it;
* ``\\r\\n`` and bare ``\\n`` line endings, and extra blank lines between messages;
* messages of any length up to a byte cap (no line-length limit), and up to
  ``MAX_HEADERS`` lines: a larger one is dropped unbuilt and reported in
  ``AMIParser.take_dropped`` (the link logs it), never turned into a huge ``Message``;
* repeated headers (``ChanVariable``, ``Variable``, ``Output``, ...), kept in full;
* the legacy ``Response: Follows`` command output that ends at ``--END COMMAND--``.

Most of a busy PBX's events are of no use to anybody here (``VarSet`` of variables
nobody reads, ``DeviceStateChange``, ``Newexten``, ...). With an :class:`EventFilter` the
parser looks at an event's first line (and a ``VarSet``'s ``Variable`` line) and skips
the event before building a message of it, which costs a few hundred instructions
instead of tens of thousands.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "AMIParser",
    "EventFilter",
    "FramingError",
    "Message",
    "format_action",
]

#: One message larger than this without a blank line is not AMI; the link is dropped.
#: A complete one larger than this (its end came in the same read) is dropped alone.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: Lines (headers) of one message. The largest Asterisk sends are a ``Command``'s
#: ``Output:`` lines (``queue show`` of a big queue: hundreds); a message with more is
#: dropped unbuilt, so 8 MiB of ``a:b`` lines cannot become a million-key dict.
MAX_HEADERS = 4096

_BANNER_PREFIX = b"Asterisk Call Manager"
_FOLLOWS = b"Response: Follows"
_END_COMMAND = b"--END COMMAND--"
#: Headers that open a legacy ``Response: Follows`` block; every other line is output.
_FOLLOWS_HEADERS = frozenset({"Response", "Privilege", "ActionID", "Message"})


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Decode the five bytes cp1252 leaves undefined as latin-1 instead of failing."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error("cti_bridge.latin1", _latin1_fallback)


def decode_text(raw: bytes) -> str:
    """UTF-8 when it is UTF-8, else cp1252 (a superset of latin-1's printable range)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "cti_bridge.latin1")


class FramingError(Exception):
    """The byte stream cannot be AMI (e.g. an endless message); drop the link."""


class Message(dict[str, str]):
    """One AMI message: ``message[name]`` is the header's first value.

    Headers that occur more than once (``ChanVariable``, ``Variable``, ``Output``, a
    forged duplicate ``Channel``, ...) keep every value, in order, in :meth:`getall`.
    Reading the first value under the plain key means a repeated header can never
    turn a field the call model treats as text into a list.
    """

    #: Repeated headers, all values in order; ``None`` when no header repeats.
    multi: dict[str, list[str]] | None = None
    #: Lines that were neither ``Name: value`` nor command output (kept for logs).
    malformed: list[str] | None = None

    def getall(self, name: str) -> list[str]:
        """Every value of a header, in order: ``[]`` when absent."""
        if self.multi is not None and name in self.multi:
            return list(self.multi[name])
        value = self.get(name)
        return [] if value is None else [value]

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def variables(self, name: str = "ChanVariable") -> dict[str, str]:
        """``ChanVariable: NAME=value`` headers (or ``Variable``) as a mapping."""
        out: dict[str, str] = {}
        for item in self.getall(name):
            key, _, value = item.partition("=")
            out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The live events somebody wants; the parser skips every other event unread.

    ``events`` are event names. ``variables`` narrows ``VarSet`` (when it is in
    ``events``) to these ``Variable`` names, ``"NAME*"`` standing for a prefix; ``None``
    keeps every ``VarSet``. Never skipped, whatever the filter: responses, anything whose
    first line is not ``Event: ...``, and events with an ``ActionID`` header (list items,
    ``OriginateResponse``, answers to somebody's action).
    """

    events: frozenset[str]
    variables: frozenset[str] | None = None

    def wants(self, event: str | None, variable: str | None = None) -> bool:
        """Whether a message with this ``Event`` (and ``Variable``) is kept: the
        reference the parser's shortcut must agree with."""
        if event is None or event not in self.events:
            return False
        if event != "VarSet" or self.variables is None:
            return True
        name = variable or ""
        return name in self.variables or any(
            p.endswith("*") and name.startswith(p[:-1]) for p in self.variables
        )


class _Skipper:
    """An :class:`EventFilter` compiled for the hot loop, and what it skipped."""

    __slots__ = ("first_lines", "prefixes", "skipped", "variables", "varset")

    def __init__(self, wanted: EventFilter) -> None:
        narrow = "VarSet" in wanted.events and wanted.variables is not None
        #: First lines of events that are always kept (``Event: Hangup``).
        self.first_lines = frozenset(
            f"Event: {name}" for name in wanted.events if not (narrow and name == "VarSet")
        )
        self.varset = narrow
        names = wanted.variables or frozenset()
        self.variables = frozenset(n for n in names if not n.endswith("*"))
        self.prefixes = tuple(n[:-1] for n in names if n.endswith("*"))
        self.skipped = 0

    def skip(self, block: str, first: str, newline: str) -> bool:
        """``block`` starts with ``first``, an ``Event: `` line not kept as such."""
        if "\nActionID:" in block:
            return False  # somebody's list item or answer: never ours to drop
        if self.varset and first == "Event: VarSet":
            name = _variable_of(block, newline)
            return name not in self.variables and not name.startswith(self.prefixes)
        return True


def _variable_of(block: str, newline: str) -> str:
    """The ``Variable`` header's first value, exactly as the message would have it
    (``Variable: X`` and ``Variable:X``, not a ``Variable:X: Y`` line, whose header is
    ``Variable:X``)."""
    start = 0
    while True:
        at = block.find("\nVariable:", start)
        if at < 0:
            return ""
        start = at + 10
        end = block.find(newline, start)
        rest = block[start:] if end < 0 else block[start:end]
        if rest.startswith(" "):
            return rest[1:]
        if ": " not in rest:
            return rest


def _first_line(block: str, newline: str) -> str:
    """The first line that is not blank."""
    start = 0
    while block.startswith(newline, start):
        start += len(newline)
    end = block.find(newline, start)
    return block[start:] if end < 0 else block[start:end]


def _parse_lines(lines: list[str], follows: bool) -> Message:
    """The careful path: repeats, header lines without a space, command output."""
    msg = Message()
    multi: dict[str, list[str]] = {}
    output: list[str] = []
    malformed: list[str] = []
    in_output = False
    for line in lines:
        if in_output:
            if line != "--END COMMAND--":
                output.append(line)
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep or not key or " " in key:
                if follows:
                    in_output = True
                    if line != "--END COMMAND--":
                        output.append(line)
                elif line:
                    malformed.append(line)
                continue
            value = value.lstrip(" ")
        if follows and key not in _FOLLOWS_HEADERS:
            in_output = True
            output.append(line)
            continue
        if key in msg:
            multi.setdefault(key, [msg[key]]).append(value)
        else:
            msg[key] = value
    if follows:
        for line in output:
            if "Output" in msg:
                multi.setdefault("Output", [msg["Output"]]).append(line)
            else:
                msg["Output"] = line
    if multi:
        msg.multi = multi
    if malformed:
        msg.malformed = malformed
    return msg


def _banner_major(banner: str) -> int:
    match = re.match(r"Asterisk Call Manager/(\d+)", banner)
    return int(match.group(1)) if match else 99


def parse_block(block: bytes, *, legacy_command_output: bool = False) -> Message:
    """One message's bytes (``\\n`` line endings, no blank line) to a :class:`Message`."""
    text = decode_text(block)
    if legacy_command_output and text.startswith("Response: Follows"):
        # Legacy command output (Asterisk 13 and older): its first MAX_HEADERS lines.
        return _parse_lines(text.split("\n", MAX_HEADERS)[:MAX_HEADERS], follows=True)
    out: list[Message] = []
    _parse_blocks([text], "\n", out)
    return out[0] if out else Message()


def _parse_blocks(
    blocks: Iterable[str],
    newline: str,
    out: list[Message],
    skipper: _Skipper | None = None,
    dropped: list[tuple[str, str]] | None = None,
) -> int:
    """Messages (text, lines ended by ``newline``) onto ``out``; returns the lines seen.

    The hot loop of the link. The fast path is one ``partition`` per line straight into
    the message; it gives way to the careful path (``_parse_lines``) at the first line
    without ": " or when a header repeats, so both paths always agree. A block of blank
    lines (extra blank lines between messages) yields nothing. An event ``skipper``
    skips is counted (its lines too), never built. A block over ``MAX_MESSAGE_BYTES``
    characters or ``MAX_HEADERS`` lines is not built either: ``(reason, first line)``
    goes onto ``dropped``.
    """
    seen = 0
    for block in blocks:
        if len(block) > 2 * MAX_HEADERS and (
            len(block) > MAX_MESSAGE_BYTES or block.count(newline) >= MAX_HEADERS
        ):  # rare: a normal message is a few hundred characters
            seen += block.count(newline) + 1
            if dropped is not None:
                reason = "too large" if len(block) > MAX_MESSAGE_BYTES else "too many headers"
                dropped.append((reason, _first_line(block, newline)[:100]))
            continue
        if skipper is not None:
            end = block.find(newline)
            if end > 0:
                first = block[:end]
            elif end < 0:
                first = block
            else:  # extra blank lines before the message (Asterisk sends some)
                first = _first_line(block, newline)
            if (
                first not in skipper.first_lines
                and first.startswith("Event: ")
                and skipper.skip(block, first, newline)
            ):
                seen += block.count(newline) + 1
                skipper.skipped += 1
                continue
        lines = block.split(newline)
        seen += len(lines)
        msg = Message()
        for line in lines:
            name, sep, value = line.partition(": ")
            if not sep:
                break
            msg[name] = value
        else:
            if len(msg) == len(lines):
                out.append(msg)
                continue
        msg = _parse_lines(lines, follows=False)
        if msg or msg.malformed:
            out.append(msg)
    return seen


def _parse_crlf(
    raw: bytes, skipper: _Skipper | None = None, dropped: list[tuple[str, str]] | None = None
) -> list[Message] | None:
    """Whole messages in Asterisk's own framing (CRLF everywhere), or ``None`` when
    ``raw`` holds a bare LF, which only the general path frames exactly.

    Decoding the read at once is decoding each message: no UTF-8 sequence can span a
    blank line, so the read is UTF-8 exactly when every message is.
    """
    try:
        blocks = raw.decode("utf-8").split("\r\n\r\n")
    except UnicodeDecodeError:
        blocks = [decode_text(block) for block in raw.split(b"\r\n\r\n")]
    out: list[Message] = []
    lines = _parse_blocks(blocks, "\r\n", out, skipper, dropped)
    # Every line break we split on is one CRLF; any other LF is a bare one.
    if raw.count(b"\n") != lines - len(blocks) + 2 * (len(blocks) - 1):
        return None
    return out


class AMIParser:
    """Incremental AMI framing for one connection.

    ``feed()`` takes whatever bytes the socket delivered and returns the messages that
    are now complete; the rest waits for the next read. Create one per connection: the
    banner is only expected at the start.
    """

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        legacy_command_output: bool | None = None,
        max_message: int = MAX_MESSAGE_BYTES,
        wanted: EventFilter | None = None,
    ):
        self.banner: str | None = None
        #: Honour ``Response: Follows ... --END COMMAND--`` blocks. ``None`` decides
        #: from the banner: only AMI before 3.0 (Asterisk 13 and older) sends them. On a
        #: current PBX the mode stays off, so a caller name that smuggles a forged
        #: ``Response: Follows`` line (trace 13-crlf) cannot stall the stream.
        self.legacy_command_output = legacy_command_output
        self._expect_banner = expect_banner
        self._buf = b""
        self._max = max_message
        self._wanted: EventFilter | None = None
        self._skipper: _Skipper | None = None
        self._skipped_before = 0
        self._dropped: list[tuple[str, str]] = []
        #: Messages dropped unbuilt for their size, on this connection.
        self.dropped_count = 0
        self.wanted = wanted

    @property
    def buffered(self) -> int:
        """Bytes waiting for the rest of their message."""
        return len(self._buf)

    @property
    def wanted(self) -> EventFilter | None:
        """The events to build (``None``: all). May change between reads."""
        return self._wanted

    @wanted.setter
    def wanted(self, wanted: EventFilter | None) -> None:
        if self._skipper is not None:
            self._skipped_before += self._skipper.skipped
        self._wanted = wanted
        self._skipper = _Skipper(wanted) if wanted is not None else None

    @property
    def skipped(self) -> int:
        """Events skipped unread because nobody wanted them, on this connection."""
        current = self._skipper.skipped if self._skipper is not None else 0
        return self._skipped_before + current

    @property
    def has_dropped(self) -> bool:
        """Whether ``take_dropped`` has something (checked once per read)."""
        return bool(self._dropped)

    def take_dropped(self) -> list[tuple[str, str]]:
        """``(reason, first line)`` of the messages dropped for their size since the
        last call (``too large``, ``too many headers``); the link logs them."""
        dropped, self._dropped = self._dropped, []
        self.dropped_count += len(dropped)
        return dropped

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf + data if self._buf else data
        if self._expect_banner:
            nl = buf.find(b"\n")
            if nl < 0:
                self._buf = buf
                self._check_size()
                return []
            self._expect_banner = False
            first = buf[:nl].removesuffix(b"\r")
            if first.startswith(_BANNER_PREFIX) or b":" not in first:
                self.banner = decode_text(first)
                buf = buf[nl + 1 :]
                if self.legacy_command_output is None:
                    self.legacy_command_output = _banner_major(self.banner) < 3
        if self.legacy_command_output and _FOLLOWS in buf:
            return self._feed_careful(buf.replace(b"\r\n", b"\n"))
        # Asterisk ends every line with CRLF: then the read is framed as it is, without
        # a copy that turns CRLF into LF first.
        end = buf.rfind(b"\r\n\r\n")
        if end >= 0 and b"\n\n" not in buf[end + 4 :]:
            skipper = self._skipper
            skipped = skipper.skipped if skipper is not None else 0
            dropped: list[tuple[str, str]] = []
            out = _parse_crlf(buf[:end], skipper, dropped)
            if out is not None:
                self._dropped += dropped
                self._buf = buf[end + 4 :]
                self._check_size()
                return out
            if skipper is not None:
                skipper.skipped = skipped  # the general path counts them again
        return self._feed_general(buf)

    def _feed_general(self, buf: bytes) -> list[Message]:
        """Any mix of CRLF and bare LF line ends. A CR at the very end of the buffer may
        be half of a CRLF: it stays in the buffer until the next read tells."""
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        parts = buf.split(b"\n\n")
        self._buf = parts.pop()
        self._check_size()
        out: list[Message] = []
        skipper = self._skipper
        for part in parts:
            if part.startswith(b"\n"):  # extra blank lines between messages
                part = part.lstrip(b"\n")  # noqa: PLW2901
            if part:
                _parse_blocks([decode_text(part)], "\n", out, skipper, self._dropped)
        return out

    def _feed_careful(self, buf: bytes) -> list[Message]:
        """Message by message, for buffers that hold legacy command output."""
        out = []
        while True:
            buf = buf.lstrip(b"\n")
            if buf.startswith(_FOLLOWS):
                end = buf.find(_END_COMMAND)
                if end < 0:
                    break
                stop = buf.find(b"\n\n", end)
                if stop < 0:
                    if buf.endswith(b"\n"):
                        stop = len(buf) - 1
                    else:
                        break
                block = buf[:stop]
            else:
                stop = buf.find(b"\n\n")
                if stop < 0:
                    break
                block = buf[:stop]
            buf = buf[stop + 2 :]
            if block:
                out.append(parse_block(block, legacy_command_output=True))
        self._buf = buf
        self._check_size()
        return out

    def _check_size(self) -> None:
        if len(self._buf) > self._max:
            size = len(self._buf)
            self._buf = b""
            raise FramingError(f"no message end after {size} bytes; not an AMI stream")


def parse_stream(data: bytes) -> list[Message]:
    """All complete messages of a recorded stream (banner optional)."""
    return AMIParser().feed(data)


def _check_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"AMI header {name!r} contains a line break; refusing to send it")
    return value


def format_action(
    action: str,
    headers: Mapping[str, str | int | Sequence[str]] | Iterable[tuple[str, str]] = (),
) -> bytes:
    """An action as bytes. Refuses CR/LF in names and values: that would inject headers.

    Sequence values (``Variable: ["A=1", "B=2"]``) become one header line each.
    """
    lines = [f"Action: {_check_value('Action', action)}"]
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        _check_value("header name", name)
        if ":" in name:
            raise ValueError(f"AMI header name {name!r} contains a colon")
        if isinstance(value, str | int):
            lines.append(f"{name}: {_check_value(name, str(value))}")
        else:
            lines.extend(f"{name}: {_check_value(name, item)}" for item in value)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
