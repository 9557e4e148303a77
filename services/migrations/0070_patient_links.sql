-- Patient-reported measures: single-use, expiring links a care-team member issues for
-- one patient and one questionnaire (docs/patient-channel.md). Only the SHA-256 of the
-- opaque random token is stored; the token itself is shown once, to the issuer.
CREATE TABLE patient_links (
    link_id uuid PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,
    organisation_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    instrument text NOT NULL,
    -- Who is expected to answer: the patient, or for a minor a guardian or caregiver.
    reporter text NOT NULL,
    issued_by uuid NOT NULL,
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    screening_id uuid,
    CHECK (expires_at > issued_at)
);

CREATE INDEX patient_links_patient ON patient_links (patient_id, issued_at);
