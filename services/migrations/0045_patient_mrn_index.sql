-- A keyed blind index of medical record numbers (services/mrn_index.py): one row per
-- registered patient, holding HMAC-SHA256(server key, organisation || normalised MRN).
-- The MRN itself is stored only encrypted, per patient (services/crypto.py), so the
-- database cannot compare MRNs; it compares these digests. The unique constraint makes
-- an MRN unique per organisation, race-free, in the registration's own transaction.
-- Forgetting a patient deletes their row (the MRN can then be registered again).
CREATE TABLE patient_mrn_index (
    organisation_id  uuid NOT NULL,
    mrn_digest       bytea NOT NULL,
    patient_id       uuid NOT NULL,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT patient_mrn_index_org_mrn_unique UNIQUE (organisation_id, mrn_digest),
    CONSTRAINT patient_mrn_index_patient_unique UNIQUE (patient_id)
);
