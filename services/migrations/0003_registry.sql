-- Read model: the caseload registry, one row per patient (projections/caseload.py).
-- `doc` holds the facts; the other columns are derived from it by the writer so that
-- queries filter, order and page in SQL. The *_on columns are the first day each flag
-- is raised given the facts ('0001-01-01': from the start; NULL: not raised), so
-- "raised today" is `col <= today` for whatever day the query asks about.
CREATE TABLE rm_registry (
    key                        uuid PRIMARY KEY,
    doc                        jsonb NOT NULL,
    organisation_id            uuid NOT NULL,
    care_manager_id            uuid,
    pcp_id                     uuid,
    psychiatric_consultant_id  uuid,
    status                     text,
    on_caseload                boolean NOT NULL,
    enrolled_at                timestamptz,
    last_contact_at            timestamptz,
    latest_phq9_total          integer,
    family_name                text,  -- null once the patient is forgotten
    safety_risk_on             date,
    not_improving_on           date,
    overdue_contact_on         date,
    measurement_due_on         date,
    needs_review_on            date,
    flagged_on                 date,
    review_new_enrollment      boolean NOT NULL
);
CREATE INDEX rm_registry_org ON rm_registry (organisation_id);
CREATE INDEX rm_registry_care_manager ON rm_registry (care_manager_id, enrolled_at, key)
    WHERE on_caseload;
CREATE INDEX rm_registry_pcp ON rm_registry (pcp_id) WHERE on_caseload;
CREATE INDEX rm_registry_review ON rm_registry (psychiatric_consultant_id, needs_review_on);
