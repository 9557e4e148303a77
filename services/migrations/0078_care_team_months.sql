-- careteam-migration: expand
-- Read model: care-team measures per month kept at projection time
-- (projections/care_team_months.py; docs/outcomes.md, "Care-team measures per month").
-- rm_care_team_facts: one document per patient (the facts of rm_outcomes_series, kept
-- apart so each read model rebuilds on its own). rm_care_team_months: the patient's
-- contribution to each month, as counts, for the as-of days from valid_from (inclusive,
-- null: any) to valid_to (exclusive, null: no end) and the months from month_from to
-- month_to (first days; null: every later month). No names, no free text.
CREATE TABLE rm_care_team_facts (
    key              uuid PRIMARY KEY,
    doc              jsonb NOT NULL,
    patient_id       uuid NOT NULL,
    organisation_id  uuid NOT NULL
);

CREATE TABLE rm_care_team_months (
    patient_id                 uuid NOT NULL,
    organisation_id            uuid NOT NULL,
    month_from                 date NOT NULL,
    month_to                   date,
    valid_from                 date,
    valid_to                   date,
    care_manager_id            uuid,
    review_days                integer[] NOT NULL,
    caseload                   integer NOT NULL,
    contacted                  integer NOT NULL,
    enrolled                   integer NOT NULL,
    twelve_weeks_episodes      integer NOT NULL,
    twelve_weeks_eligible      integer NOT NULL,
    twelve_weeks_in_progress   integer NOT NULL,
    twelve_weeks_final         integer NOT NULL,
    twelve_weeks_follow_up     integer NOT NULL,
    twelve_weeks_response      integer NOT NULL,
    twelve_weeks_remission     integer NOT NULL,
    six_months_episodes        integer NOT NULL,
    six_months_eligible        integer NOT NULL,
    six_months_in_progress     integer NOT NULL,
    six_months_final           integer NOT NULL,
    six_months_follow_up       integer NOT NULL,
    six_months_response        integer NOT NULL,
    six_months_remission       integer NOT NULL,
    drr_e_episodes             integer NOT NULL,
    drr_e_eligible             integer NOT NULL,
    drr_e_in_progress          integer NOT NULL,
    drr_e_final                integer NOT NULL,
    drr_e_follow_up            integer NOT NULL,
    drr_e_response             integer NOT NULL,
    drr_e_remission            integer NOT NULL,
    gad7_twelve_weeks_episodes     integer NOT NULL,
    gad7_twelve_weeks_eligible     integer NOT NULL,
    gad7_twelve_weeks_in_progress  integer NOT NULL,
    gad7_twelve_weeks_final        integer NOT NULL,
    gad7_twelve_weeks_follow_up    integer NOT NULL,
    gad7_twelve_weeks_response     integer NOT NULL,
    gad7_twelve_weeks_remission    integer NOT NULL,
    gad7_six_months_episodes       integer NOT NULL,
    gad7_six_months_eligible       integer NOT NULL,
    gad7_six_months_in_progress    integer NOT NULL,
    gad7_six_months_final          integer NOT NULL,
    gad7_six_months_follow_up      integer NOT NULL,
    gad7_six_months_response       integer NOT NULL,
    gad7_six_months_remission      integer NOT NULL,
    dms_e_eligible             integer NOT NULL,
    dms_e_met                  integer NOT NULL,
    dms_e_open                 integer NOT NULL,
    dsf_e_eligible             integer NOT NULL,
    dsf_e_met                  integer NOT NULL,
    dsf_e_open                 integer NOT NULL
);
-- A query reads one organisation's rows for a range of months; a write replaces a patient's.
CREATE INDEX rm_care_team_months_org_month ON rm_care_team_months (organisation_id, month_from);
CREATE INDEX rm_care_team_months_patient ON rm_care_team_months (patient_id);
