-- Read models: the referral and consultation trackers (projections/trackers.py), one
-- document per loop. Due days and overdue steps are derived on read for "today".
CREATE TABLE rm_referral_tracker (
    key          uuid PRIMARY KEY,
    doc          jsonb NOT NULL,
    patient_id   uuid NOT NULL,
    status       text NOT NULL,
    open         boolean NOT NULL,
    expected_by  date NOT NULL
);
CREATE INDEX rm_referral_tracker_patient ON rm_referral_tracker (patient_id) WHERE open;

CREATE TABLE rm_consultation_tracker (
    key            uuid PRIMARY KEY,
    doc            jsonb NOT NULL,
    patient_id     uuid NOT NULL,
    consultant_id  uuid,
    status         text NOT NULL,
    open           boolean NOT NULL
);
CREATE INDEX rm_consultation_tracker_patient ON rm_consultation_tracker (patient_id) WHERE open;
CREATE INDEX rm_consultation_tracker_consultant ON rm_consultation_tracker (consultant_id)
    WHERE open;
