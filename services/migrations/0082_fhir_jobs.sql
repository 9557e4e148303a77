-- careteam-migration: expand
-- FHIR onboarding imports and Bulk Data exports as durable jobs (services/fhir/jobs.py):
-- a job's status, progress and report, and an export's NDJSON lines, outlive the process
-- that ran it, so a status URL still answers after a restart and any replica can answer.
-- A running job's process beats heartbeat_at; a running job whose beat is stale was
-- interrupted (its process died). Finished jobs are deleted after a retention period.
CREATE TABLE fhir_jobs (
    id               text PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('import', 'export')),
    owner_id         uuid NOT NULL,
    organisation_id  uuid NOT NULL,
    status           text NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
    -- export: request URL, transaction time, types; import: dry run. No patient data.
    detail           jsonb NOT NULL DEFAULT '{}',
    total            integer NOT NULL DEFAULT 0,
    done             integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    heartbeat_at     timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX fhir_jobs_owner ON fhir_jobs (owner_id, kind, created_at);

-- One report line per CSV row or Bundle entry (codes, fields and careteam ids only).
CREATE TABLE fhir_import_entries (
    job_id  text NOT NULL REFERENCES fhir_jobs (id) ON DELETE CASCADE,
    seq     integer NOT NULL,
    entry   jsonb NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- One NDJSON line of an export, encrypted with its patient's data key (crypto-shredding):
-- forgetting the patient deletes these rows, and a line whose key is gone is never served.
CREATE TABLE fhir_export_lines (
    job_id         text NOT NULL REFERENCES fhir_jobs (id) ON DELETE CASCADE,
    resource_type  text NOT NULL,
    seq            integer NOT NULL,
    patient_id     uuid NOT NULL,
    encrypted      boolean NOT NULL,
    line           jsonb NOT NULL,
    PRIMARY KEY (job_id, resource_type, seq)
);
CREATE INDEX fhir_export_lines_patient ON fhir_export_lines (patient_id);
