"""``GET /api/openapi.json`` (issue 13) is true: a valid OpenAPI 3.1 document, naming
every route the daemon's web registers and nothing else, and every answer of the
route table's requests (``test_route_roles.py``: every route, as an operator, a
supervisor and without a token) is a status it documents, in the type it documents,
valid against its schema. On the daemon's whole web on the memory store."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from cti_bridge import __version__
from cti_bridge.web.openapi import openapi_document
from tests.support.helpdesk import Helpdesk
from tests.unit.web.test_route_roles import registered, table

#: Klein's branch route ``/`` comes as two rules: ``/`` and its twin for whatever is
#: below it (the console's static files); the document names ``/`` for both.
BRANCH_TWIN = "/<path:__rest__>"


def openapi_path(rule: str) -> str:
    """``/api/calls/<string:call_id>`` → ``/api/calls/{call_id}``."""
    return re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(__version__)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
    }


def test_it_is_served_without_a_token(document: dict[str, Any]) -> None:
    answer = Helpdesk().ask("GET", "/api/openapi.json")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == document


def test_it_names_every_route_and_only_those(document: dict[str, Any]) -> None:
    have = {
        (openapi_path(rule), "get" if method == "*" else method.lower())
        for rule, method in registered(Helpdesk())
        if rule != BRANCH_TWIN
    }
    documented = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert have - documented == set(), "routes the document does not name"
    assert documented - have == set(), "documented routes the web does not have"


def schema_for(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method} {path}: {status} is not documented"
    return dict(responses[str(status)])


@pytest.mark.parametrize("caller", ["anna", "sofie", None])
def test_real_answers_match_the_document(document: dict[str, Any], caller: str | None) -> None:
    desk = Helpdesk()
    for (rule, method), case in table(desk).items():
        path = openapi_path("/" if rule == BRANCH_TWIN else rule)
        verb = "get" if method == "*" else method.lower()
        token = desk.token(caller) if caller else None
        if rule == "/ws":
            answer = desk.upgrade(token)
        else:
            answer = desk.ask(verb.upper(), case.path, token=token, body=case.body)
        response = schema_for(document, path, verb, answer.status)
        content = response.get("content")
        if content is None or rule == BRANCH_TWIN:  # static files: of every type
            continue
        (kind,) = content
        assert answer.headers["content-type"].split(";")[0] == kind, (rule, method)
        if kind != "application/json":
            continue
        schema = {**content[kind]["schema"], "components": document["components"]}
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in Draft202012Validator(schema).iter_errors(answer.json())
        ]
        assert errors == [], (method, case.path, caller, answer.status)
