-- Read model: monthly minutes and billing facts (projections/billing.py). Codes are not
-- stored: they are derived on read for any month from these facts and the billing rule
-- version in force for that month.
CREATE TABLE rm_billing_facts (
    key              uuid PRIMARY KEY,
    doc              jsonb NOT NULL,
    organisation_id  uuid NOT NULL,
    care_manager_id  uuid
);
CREATE INDEX rm_billing_facts_care_manager ON rm_billing_facts (care_manager_id);

-- One row per logged care manager activity, by effective time.
CREATE TABLE rm_billing_minutes (
    contact_id      uuid PRIMARY KEY,
    patient_id      uuid NOT NULL,
    occurred_at     timestamptz NOT NULL,
    minutes         integer NOT NULL CHECK (minutes >= 0),
    activity        text NOT NULL,
    episode_number  integer NOT NULL,
    performed_by    uuid
);
CREATE INDEX rm_billing_minutes_time ON rm_billing_minutes (occurred_at);
CREATE INDEX rm_billing_minutes_patient ON rm_billing_minutes (patient_id, occurred_at);
