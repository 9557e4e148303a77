-- Who may see which patient: the organisation and the care team, kept by the
-- patient_access projection and joined into every patient query (authorisation in SQL).
CREATE TABLE rm_patient_access (
    patient_id                 uuid PRIMARY KEY,
    organisation_id            uuid NOT NULL,
    care_manager_id            uuid,
    pcp_id                     uuid,
    psychiatric_consultant_id  uuid
);
CREATE INDEX rm_patient_access_org ON rm_patient_access (organisation_id);
CREATE INDEX rm_patient_access_cm ON rm_patient_access (care_manager_id);
CREATE INDEX rm_patient_access_pcp ON rm_patient_access (pcp_id);
CREATE INDEX rm_patient_access_psy ON rm_patient_access (psychiatric_consultant_id);

-- Access decisions and reads of patient data, for audit (HIPAA 164.312(b)).
CREATE TABLE access_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    actor_id         uuid,
    role             text,
    organisation_id  uuid,
    patient_id       uuid,
    operation        text NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('allowed', 'denied')),
    reason           text,
    purpose_of_use   text,
    request_id       text
);
CREATE INDEX access_log_patient ON access_log (patient_id, at);
CREATE INDEX access_log_actor ON access_log (actor_id, at);
