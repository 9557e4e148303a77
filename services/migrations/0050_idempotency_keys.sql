-- Idempotency keys: a client's retry of a command with the same key writes nothing and
-- gets the first result. The row is inserted by the same statement that appends the
-- command's events (services/eventstore.py), so a key is recorded if and only if its
-- events are. Keys are honoured for 24 hours (services/api/idempotency.py says why).
CREATE TABLE idempotency_keys (
    actor_id uuid NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    operation text NOT NULL,
    stream_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    last_event_id uuid NOT NULL,
    created_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
