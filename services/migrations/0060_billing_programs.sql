-- Billing programs by organisation and date of service (docs/billing-programs.md), and
-- the role of whoever performed a minute entry (only care manager time counts).
-- An organisation runs one program from each effective_from until the next row's date;
-- without a row its months bill as collaborative care. Not patient data.
CREATE TABLE organisation_billing_programs (
    organisation_id uuid NOT NULL,
    effective_from date NOT NULL,
    program text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, effective_from)
);

ALTER TABLE rm_billing_minutes ADD COLUMN performer_role text;
