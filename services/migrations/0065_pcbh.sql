-- Read model: the wider team and PCBH (projections/pcbh.py), one document per patient:
-- wider-team members, caregivers and their granted scopes, warm handoffs, brief visits.
CREATE TABLE rm_pcbh (
    key         uuid PRIMARY KEY,
    doc         jsonb NOT NULL,
    patient_id  uuid NOT NULL
);
-- Authorisation asks "is this user a member / a caregiver of this patient?".
CREATE INDEX rm_pcbh_members ON rm_pcbh USING gin ((doc->'members'));
CREATE INDEX rm_pcbh_caregivers ON rm_pcbh USING gin ((doc->'caregivers'));
