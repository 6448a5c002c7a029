"""``install(node)``: ``/api/agi/lookup`` for ``dialplans/agi/caller_lookup.py``.

Off without a service token (``[agi] token_env``): the path still answers, 404 with the
reason, so the AGI script finds nothing and the calls go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.resource import Resource
from twisted.web.server import Request

from cti_bridge.log import register_secret
from cti_bridge.web.http import NotFound

from .lookup import agi_lookup_resource

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["install"]


def install(node: Node) -> None:
    token = node.config.agi.token
    if token:
        register_secret(token)
    lookup = agi_lookup_resource(
        node.store,
        node.run,
        default_region=node.config.phone.default_region,
        token=token,
    )

    def agi(request: Request) -> Resource:
        if lookup is None:
            raise NotFound("the AGI caller lookup is not enabled")
        return lookup

    node.http.route("/api/agi/lookup", branch=False)(agi)
    if lookup is not None:
        node.provide("agi", lookup)
