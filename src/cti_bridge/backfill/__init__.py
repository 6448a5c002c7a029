"""The backfill room: calls no AMI link saw, from the PBX's own CDRs.

Between an owner's death and the standby's grant (a takeover, about a lease), while a
link reconnects, or while the daemon is down, the PBX goes on taking calls. A call that
begins and ends in such a gap is in no resync; Asterisk's CDRs (``cdr_pgsql``) have it.
``cdr`` (pure) makes ended calls of CDR rows; ``reader`` reads the PBX's table;
``wiring`` reads it after each resync of a PBX with ``[[pbx]] cdr_url`` and gives the
calls without a record to the node's consumers. See docs/asterisk.md.
"""

from .wiring import install

__all__ = ["install"]
