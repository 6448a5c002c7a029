"""The agi room: the dialplan's caller lookup (``GET /api/agi/lookup``, docs/screen-pop.md).

``lookup`` answers who is calling for routing (language, tier, queue priority) to the
holder of the ``[agi]`` service token; ``wiring`` mounts it on the node's web.
"""

from .lookup import PRIORITY, AgiLookupResource, CallerProfiles, agi_lookup_resource
from .wiring import install

__all__ = ["PRIORITY", "AgiLookupResource", "CallerProfiles", "agi_lookup_resource", "install"]
