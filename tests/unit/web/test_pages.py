"""What a browser is told and what it may do (issue 13), on the daemon's whole web on
the memory store: every page and static file carries a strict Content-Security-Policy,
``nosniff`` and ``no-referrer``, and no page has inline script, style or event handlers
(so the policy needs no ``unsafe-inline``); API answers are ``nosniff`` too. The screens'
WebSocket takes a browser's page of the daemon's own origin (or ``[web]
allowed_origins``) and refuses another site's with 403 before looking at the token; a
client without ``Origin`` (no browser) needs only the token."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from cti_bridge.app.config import ConfigError, parse_config
from cti_bridge.web.clients import normal_origin, origin_allowed
from tests.support.helpdesk import HOST, Helpdesk

STATIC = Path(str(resources.files("cti_bridge.web") / "static"))
DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "connect-src": "'self'",  # CSP 3: 'self' takes ws: and wss: of the page's own host
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}


def policy(header: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            found[name] = value.strip()
    return found


@pytest.fixture(scope="module")
def desk() -> Helpdesk:
    return Helpdesk()


@pytest.mark.parametrize(
    "path", ["/", "/wallboard", "/js/main.js", "/console.css", "/no-such-page"]
)
def test_every_page_has_the_strict_policy(desk: Helpdesk, path: str) -> None:
    answer = desk.ask("GET", path)
    assert answer.status == (404 if path == "/no-such-page" else 200)
    csp = policy(answer.headers["content-security-policy"])
    assert {name: csp.get(name) for name in DIRECTIVES} == DIRECTIVES
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    assert "unsafe-eval" not in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_api_answers_are_not_sniffed(desk: Helpdesk) -> None:
    for path in ("/api/me", "/api/calls/1", "/healthz"):
        assert desk.ask("GET", path).headers["x-content-type-options"] == "nosniff", path


class Inline(HTMLParser):
    """What in a page would need ``unsafe-inline``: notes each finding."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if name == "style":
                self.found.append(f"{tag} style=")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}=javascript:")
            if name in ("src", "href") and (value or "").lower().startswith(("http:", "https:")):
                self.found.append(f"{tag} {name}= another origin")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("inline script text")


@pytest.mark.parametrize("page", sorted(p.name for p in STATIC.glob("*.html")))
def test_no_page_has_inline_script_or_style(page: str) -> None:
    parser = Inline()
    parser.feed((STATIC / page).read_text())
    assert parser.found == []


def test_the_parser_sees_what_it_looks_for() -> None:
    parser = Inline()
    parser.feed(
        '<script>alert(1)</script><style>p{}</style><p style="x" onclick="y">'
        '<a href="javascript:z"><script src="https://cdn.example/x.js"></script>'
    )
    assert parser.found == [
        "<script> without src",
        "inline script text",
        "<style>",
        "p style=",
        "p onclick=",
        "a href=javascript:",
        "script src= another origin",
    ]


# -- the WebSocket's Origin ------------------------------------------------------------


def test_the_daemons_own_pages_and_clients_without_origin_get_a_socket(desk: Helpdesk) -> None:
    for origin in (f"http://{HOST}", f"https://{HOST}", f"HTTP://{HOST.upper()}", None):
        assert desk.upgrade(desk.token("anna"), origin=origin).status == 101, origin


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://cti.example:8081",  # another port: another origin
        "http://cti.example",  # the default port, not 8080
        "http://cti.example.evil.example:8080",
        "null",  # a sandboxed frame, a file:// page
        "http://cti.example:8080/path",
        "not an origin",
        "",
    ],
)
def test_another_sites_page_is_refused_before_the_token_is_looked_at(
    desk: Helpdesk, origin: str
) -> None:
    good = desk.upgrade(desk.token("anna"), origin=origin)
    assert good.status == 403, origin
    assert good.json() == {"error": "this page's origin may not open a screen socket"}
    assert desk.upgrade("forged", origin=origin).status == 403  # not 401: nothing asked


def test_allowed_origins_let_other_pages_in() -> None:
    desk = Helpdesk(web={"allowed_origins": ["https://wall.example", "http://Board.example:81"]})
    token = desk.token("sofie")
    assert desk.upgrade(token, origin="https://wall.example:443").status == 101
    assert desk.upgrade(token, origin="http://board.example:81").status == 101
    assert desk.upgrade(token, origin="http://wall.example").status == 403  # scheme counts
    assert desk.upgrade(token, origin="https://evil.example").status == 403
    assert desk.upgrade("forged", origin="https://wall.example").status == 401


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "cti:8080", True),
        ("http://cti:8080", "cti:8080", True),
        ("https://cti", "cti:443", True),
        ("http://cti", "cti:80", True),
        ("http://[::1]:8080", "[::1]:8080", True),
        ("http://cti:8080", None, False),
        ("http://cti:8080", "", False),
        ("http://user@cti:8080", "cti:8080", False),
        ("http://cti:99999", "cti:99999", False),
        ("ftp://cti", "cti", False),
    ],
)
def test_origin_allowed(origin: str | None, host: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, host, frozenset()) is allowed


def test_a_bad_allowed_origin_stops_start_up_naming_the_key() -> None:
    assert normal_origin("https://Wall.Example:443/") == "https://wall.example"
    with pytest.raises(ConfigError, match=r"web\.allowed_origins.*'wall\.example' is not an"):
        parse_config({"web": {"allowed_origins": ["wall.example"]}}, source="test")
    with pytest.raises(ConfigError, match=r"web\.allowed_origins"):
        parse_config({"web": {"allowed_origins": "https://wall.example"}}, source="test")
