-- Read model: outcomes over time (projections/outcomes_series.py), one document per
-- patient: organisation, first enrollment day, utilisation events (kind, effective day)
-- and complete GAD-7 totals. The series per enrollment month is computed on read.
CREATE TABLE rm_outcomes_series (
    key              uuid PRIMARY KEY,
    doc              jsonb NOT NULL,
    patient_id       uuid NOT NULL,
    organisation_id  uuid NOT NULL,
    enrolled_on      date
);
-- The series reads one organisation's enrolled patients up to a day.
CREATE INDEX rm_outcomes_series_org_enrolled ON rm_outcomes_series (organisation_id, enrolled_on);
