-- Break-the-glass grants (projections/emergency_access.py): joined into the read
-- authorisation of clinicians outside the care team, and compliance's review queue.
CREATE TABLE rm_emergency_access (
    grant_id         uuid PRIMARY KEY,
    patient_id       uuid NOT NULL,
    organisation_id  uuid NOT NULL,
    user_id          uuid NOT NULL,
    role             text NOT NULL,
    reason           text NOT NULL,
    granted_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    review_outcome   text,
    reviewed_by      uuid,
    review_note      text,
    reviewed_at      timestamptz
);
CREATE INDEX rm_emergency_access_user ON rm_emergency_access (user_id, patient_id, expires_at);
CREATE INDEX rm_emergency_access_open ON rm_emergency_access (organisation_id)
    WHERE review_outcome IS NULL;
