-- The age below which a guardian gives a minor's treatment and data-sharing consent, per
-- organisation (it varies by US state; docs/minors.md). No row: the default, under 18.
CREATE TABLE organisation_consent_rules (
    organisation_id uuid PRIMARY KEY,
    guardian_consent_under integer NOT NULL CHECK (guardian_consent_under BETWEEN 12 AND 21),
    updated_at timestamptz NOT NULL DEFAULT now()
);
