-- careteam-migration: expand
-- The projector's partition count (services/projector/partitions.py): one row, fixed by
-- the first process of this release to start; one configured with another count refuses to
-- start. The read models' checkpoints become one row per read model and partition
-- (``<name>@<partition>``) in ``checkpoints``.
CREATE TABLE projector_partitions (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    partitions  integer NOT NULL CHECK (partitions > 0),
    fixed_at    timestamptz NOT NULL DEFAULT now()
);
