-- Partner feeds (docs/architecture.md, Kafka: partner feeds) and the accounting of disclosures
-- (45 CFR 164.528). See services/partners/.
--
-- The registry is a table with an append-only history, not an event stream: the log
-- is clinical (every event belongs to a patient, is published to the internal Kafka
-- topic and is never forgotten), while a partner's keys must be deletable and must
-- never reach Kafka.

CREATE TABLE partners (
    partner_id             uuid PRIMARY KEY,
    -- The careteam organisation whose patients' events this feed discloses.
    owner_organisation_id  uuid NOT NULL,
    -- The recipient, as patients' consents name it.
    organisation_id        uuid NOT NULL,
    name                   text NOT NULL,
    purpose                text NOT NULL,
    allowed_event_types    text[] NOT NULL,
    delivery               text NOT NULL CHECK (delivery IN ('kafka', 'webhook', 'graphql')),
    kafka_topic            text,
    webhook_url            text,
    active                 boolean NOT NULL DEFAULT true,
    version                integer NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CONSTRAINT partners_kafka_topic CHECK ((delivery = 'kafka') = (kafka_topic IS NOT NULL)),
    CONSTRAINT partners_webhook_url CHECK ((delivery = 'webhook') = (webhook_url IS NOT NULL))
);
CREATE INDEX partners_owner ON partners (owner_organisation_id, name);
CREATE INDEX partners_recipient ON partners (organisation_id);

-- Secrets, apart from the configuration so that no query of the registry reads them.
-- The pseudonym key never leaves careteam; the webhook secret is shown once.
CREATE TABLE partner_keys (
    partner_id      uuid PRIMARY KEY REFERENCES partners,
    pseudonym_key   bytea NOT NULL CHECK (length(pseudonym_key) >= 16),
    webhook_secret  text
);

-- Every change to the registry and every operator action on a feed, never edited.
CREATE TABLE partner_changes (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id       uuid NOT NULL REFERENCES partners,
    version          integer NOT NULL,
    change           text NOT NULL CHECK (change IN ('registered', 'updated', 'deactivated',
                         'reactivated', 'secret_rotated', 'replayed', 'redelivery_requested')),
    at               timestamptz NOT NULL,
    actor_id         uuid,
    role             text,
    organisation_id  uuid,
    request_id       text,
    details          jsonb NOT NULL
);
CREATE INDEX partner_changes_by_partner ON partner_changes (partner_id, id);

-- Where each partner's feed has got to in the log. `epoch` grows with every replay, so
-- a worker whose checkpoint was moved under it notices at its next update.
CREATE TABLE partner_feeds (
    partner_id  uuid PRIMARY KEY REFERENCES partners,
    tx_id       xid8 NOT NULL DEFAULT '0'::xid8,
    position    bigint NOT NULL DEFAULT 0,
    epoch       integer NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Deliveries that failed every attempt (or were never sendable); an admin can ask for
-- them again. Only references are kept: a redelivery projects the event afresh.
CREATE TABLE partner_dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id   uuid NOT NULL REFERENCES partners,
    event_id     uuid NOT NULL,
    patient_id   uuid NOT NULL,
    public_type  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('dead', 'redelivery_requested',
                     'redelivered', 'withheld')),
    attempts     integer NOT NULL,
    last_error   text NOT NULL,
    dead_at      timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX partner_dead_letters_by_status ON partner_dead_letters (partner_id, status, id);

-- The accounting of disclosures: one row per delivery to a partner (date, recipient,
-- description, purpose), kept at least six years; never edited.
CREATE TABLE disclosures (
    id                         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    disclosed_at               timestamptz NOT NULL,
    patient_id                 uuid NOT NULL,
    partner_id                 uuid NOT NULL REFERENCES partners,
    recipient_organisation_id  uuid NOT NULL,
    recipient_name             text NOT NULL,
    description                text NOT NULL,
    purpose                    text NOT NULL,
    channel                    text NOT NULL CHECK (channel IN ('kafka', 'webhook', 'graphql')),
    event_id                   uuid NOT NULL,
    event_type                 text NOT NULL,
    public_type                text NOT NULL,
    message_id                 text NOT NULL,
    part2                      boolean NOT NULL,
    consent_ids                uuid[] NOT NULL,
    rules_version              text NOT NULL
);
CREATE INDEX disclosures_by_patient ON disclosures (patient_id, disclosed_at, id);
CREATE INDEX disclosures_by_partner ON disclosures (partner_id, id);

CREATE TRIGGER partner_changes_append_only BEFORE UPDATE OR DELETE ON partner_changes
    FOR EACH ROW EXECUTE FUNCTION careteam_refuse_change();
CREATE TRIGGER partner_changes_no_truncate BEFORE TRUNCATE ON partner_changes
    FOR EACH STATEMENT EXECUTE FUNCTION careteam_refuse_change();
CREATE TRIGGER disclosures_append_only BEFORE UPDATE OR DELETE ON disclosures
    FOR EACH ROW EXECUTE FUNCTION careteam_refuse_change();
CREATE TRIGGER disclosures_no_truncate BEFORE TRUNCATE ON disclosures
    FOR EACH STATEMENT EXECUTE FUNCTION careteam_refuse_change();

-- Feeds fold each page's patients' consents from the log: a small partial index keeps
-- that a lookup, not a scan.
CREATE INDEX events_consents_by_patient ON events (patient_id, tx_id, position)
    WHERE event_type IN ('patient.consent_granted', 'patient.consent_revoked');
