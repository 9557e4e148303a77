-- careteam-migration: expand
-- One access-log row per list read (docs/performance.md): a read of several patients is
-- one row naming them all in `patient_ids` (its `patient_id` is NULL); a read of one
-- patient, and every refusal, is a row with `patient_id` as before (`patient_ids` NULL).
-- Rows written before this migration are unchanged, and so are their chain hashes.
ALTER TABLE access_log ADD COLUMN patient_ids uuid[];
CREATE INDEX access_log_patient_ids ON access_log USING gin (patient_ids)
    WHERE patient_ids IS NOT NULL;

-- The access log as one entry per patient, what every reader by patient asks for: a row
-- of one patient is one entry (part 0); a list row is one entry per patient it names
-- (part 1, 2, ... in the list's order). `listed` is the row's patients (one for a
-- single-patient row), so a reader by patient also writes `listed @> ARRAY[$p]`, which
-- the GIN index answers for list rows (PostgreSQL cannot derive it from the unnest).
CREATE VIEW access_log_entries AS
SELECT l.id, 0::bigint AS part, l.at, l.actor_id, l.role, l.organisation_id, l.patient_id,
       l.operation, l.outcome, l.reason, l.purpose_of_use, l.request_id, l.fields,
       CASE WHEN l.patient_id IS NULL THEN '{}'::uuid[] ELSE ARRAY[l.patient_id] END AS listed
FROM access_log l
WHERE l.patient_ids IS NULL
UNION ALL
SELECT l.id, p.part, l.at, l.actor_id, l.role, l.organisation_id, p.patient_id,
       l.operation, l.outcome, l.reason, l.purpose_of_use, l.request_id, l.fields,
       l.patient_ids AS listed
FROM access_log l CROSS JOIN LATERAL unnest(l.patient_ids) WITH ORDINALITY AS p(patient_id, part)
WHERE l.patient_ids IS NOT NULL;
