"""Every PostgreSQL advisory lock key careteam takes, in one place.

The values are the ones the modules used before this registry existed, so a rolling
deploy (old and new processes side by side) never runs two leaders of one follower.

PostgreSQL keeps one-key (``pg_advisory_lock(bigint)``) and two-key
(``pg_advisory_lock(int, int)``) locks apart, so the chain sealer's one-key lock and the
relay's two-key namespace share the number 7_361_002 without ever meeting. A new key
takes the next free number here and a row in docs/log-followers.md.
"""

from __future__ import annotations

# One-key locks.
MIGRATIONS = 7_361_001  # serialises ``migrate`` (services/database.py), session lock
AUDIT_CHAIN_SEAL = 7_361_002  # one chain sealer at a time, transaction lock (audit/chain.py)

# Two-key lease namespaces: the second key is ``hashtext(name)`` of the follower.
RELAY_LEASE = 7_361_002  # hashtext(relay checkpoint name), e.g. 'relay:internal'
PARTNER_LEASE = 7_361_003  # hashtext('partner:' || partner id)
FOLLOWER_LEASE = 7_361_004  # hashtext(checkpoint name) of a ``LogFollower`` without its own
# The partitioned projector (services/projector/partitions.py): the second key is the
# worker slot (members) or the partition number, not a hashtext.
PROJECTOR_MEMBER = 7_361_005  # one slot per live projector worker
PROJECTOR_PARTITION = 7_361_006  # the worker that applies one partition of the read models
