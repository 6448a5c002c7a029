"""Caller ID as Asterisk reports it: C-escaped in channel snapshots, raw elsewhere.

Caller ID is attacker-controlled text. The model hands on the *decoded* text (what the
caller really sent) and never interprets it; making it safe for HTML, SQL or logs is the
job of whoever renders or stores it.
"""

from __future__ import annotations

__all__ = ["is_withheld", "unescape_c", "withheld_by_presentation"]

# ast_escape_c() in Asterisk's utils.c escapes exactly these.
_C_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}

#: Raw numbers that mean "no number": withheld by the caller or never sent.
_NO_NUMBER = frozenset({"", "anonymous", "<unknown>", "unknown", "restricted", "private"})


def unescape_c(text: str) -> str:
    """Undo ``ast_escape_c``: ``Jan \\"de Baas\\" O\\'Brien`` -> ``Jan "de Baas" O'Brien``.

    An unknown escape keeps its backslash, so nothing the caller sent is lost.
    """
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    end = len(text)
    while i < end:
        ch = text[i]
        if ch == "\\" and i + 1 < end:
            repl = _C_ESCAPES.get(text[i + 1])
            if repl is not None:
                out.append(repl)
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def withheld_by_presentation(pres: str) -> bool:
    """``CID-CallingPres: 35 (Presentation Prohibited, Network Number)`` -> True.

    The number's presentation bits (0x60) say allowed (0x00), prohibited (0x20) or not
    available (0x40); both of the latter mean the helpdesk must not show a number.
    """
    head = pres.split(" ", 1)[0]
    if head.isdigit():
        return (int(head) & 0x60) != 0
    text = pres.lower()
    return "prohib" in text or "unavailable" in text


def is_withheld(number: str | None) -> bool:
    """The raw number says there is no number to show (``anonymous``, ``<unknown>``, ...)."""
    return number is None or number.strip().lower() in _NO_NUMBER
