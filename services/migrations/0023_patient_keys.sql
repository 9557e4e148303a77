-- Crypto-shredding (services/crypto.py): one data key per patient, wrapped by the master
-- key. Forgetting a patient sets wrapped_key to NULL for good; the row stays so that no
-- new key is ever created for a forgotten patient.
CREATE TABLE patient_keys (
    patient_id    uuid PRIMARY KEY,
    wrapped_key   bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    destroyed_at  timestamptz,
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);
