-- Keyed blind indexes for finding patients (services/patient_search.py). Names and birth
-- dates are stored only encrypted, per patient (services/crypto.py), so the database
-- cannot compare them; it compares these digests instead. One row per (organisation,
-- field, normalised value): each prefix of each name token from 2 to 20 characters, and
-- the birth date. The field, the organisation and the value are all inside the HMAC, so
-- a row tells nothing without the server's key; equal digests do tell that two patients
-- of one organisation share a name prefix or a birth date. Written in the registration's
-- transaction, deleted in the erasure's (and vacuumed with the other plaintext tables).
CREATE TABLE patient_search_index (
    organisation_id  uuid NOT NULL,
    digest           bytea NOT NULL,
    patient_id       uuid NOT NULL,
    PRIMARY KEY (organisation_id, digest, patient_id)
);
CREATE INDEX patient_search_index_patient ON patient_search_index (patient_id);
