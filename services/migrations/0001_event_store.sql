-- The event store: the system of record.
--
-- Global order is (tx_id, position). `position` comes from an identity sequence, so
-- positions are unique but may commit out of order. A reader only reads rows whose
-- transaction id is below the xmin of its own snapshot (every transaction below that is
-- finished), in (tx_id, position) order; a row that commits late always has a tx_id at
-- or above that horizon, so it sorts after everything already read and is never skipped.
-- Writers take no table lock. See services/eventstore.py.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid NOT NULL UNIQUE,
    stream_id       uuid NOT NULL,
    stream_type     text NOT NULL,
    stream_version  integer NOT NULL CHECK (stream_version > 0),
    patient_id      uuid NOT NULL,
    event_type      text NOT NULL,
    event_version   integer NOT NULL CHECK (event_version > 0),
    payload         jsonb NOT NULL,
    metadata        jsonb NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_log_order ON events (tx_id, position);
CREATE INDEX events_by_patient ON events (patient_id, position);

-- Streams: one row per aggregate, so a stream's type and patient are known without
-- scanning events, and so authorisation can join on patient_id.
CREATE TABLE streams (
    stream_id    uuid PRIMARY KEY,
    stream_type  text NOT NULL,
    patient_id   uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX streams_by_patient ON streams (patient_id);

-- Snapshots are a cache: derivable from events, dropped when the code's state shape
-- changes (state_version), never the source of truth.
CREATE TABLE snapshots (
    stream_id       uuid PRIMARY KEY,
    stream_version  integer NOT NULL,
    state_version   text NOT NULL,
    state           jsonb NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now()
);

-- Where each log reader (projection, relay, partner feed) has got to.
CREATE TABLE checkpoints (
    name        text PRIMARY KEY,
    tx_id       xid8 NOT NULL DEFAULT '0'::xid8,
    position    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
