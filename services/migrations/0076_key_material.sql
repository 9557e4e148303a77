-- careteam-migration: expand
-- Keys derived from the first master key (the MRN blind index key and the erasure-record
-- key), each wrapped by the current master key, so that rotating the master key
-- (careteam keys rotate-master) re-wraps them instead of changing them: the blind index
-- rows and the erasure records in the log are never rewritten. A wrapped value names the
-- master key that wrapped it (services/crypto.py).
CREATE TABLE key_material (
    name       text PRIMARY KEY,
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
