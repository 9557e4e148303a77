-- Read model: one document per patient (projections/patient_view.py).
CREATE TABLE rm_patient_view (
    key              uuid PRIMARY KEY,
    organisation_id  uuid NOT NULL,
    doc              jsonb NOT NULL
);
CREATE INDEX rm_patient_view_org ON rm_patient_view (organisation_id);
