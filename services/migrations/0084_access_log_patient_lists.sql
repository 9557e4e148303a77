-- careteam-migration: expand
-- One access-log row per list read (docs/performance.md): a read of several patients is
-- one row naming them all in `patient_ids` (its `patient_id` is NULL); a read of one
-- patient, and every refusal, is a row with `patient_id` as before (`patient_ids` NULL).
-- Rows written before this migration are unchanged, and so are their chain hashes.
-- The GIN index on `patient_ids` is built without blocking writes by the next migration.
-- A short lock timeout: adding the column needs the table's lock for an instant, and
-- must not queue every read's audit insert behind a long transaction (retry instead).
SET LOCAL lock_timeout = '5s';
ALTER TABLE access_log ADD COLUMN patient_ids uuid[];
-- A row has one shape or the other (checked for new rows; existing ones all have the
-- first, so the check is not run over the table).
ALTER TABLE access_log ADD CONSTRAINT access_log_one_shape
    CHECK (patient_ids IS NULL OR (patient_id IS NULL AND cardinality(patient_ids) >= 2))
    NOT VALID;

-- Whether list rows are written yet (docs/operations.md, "Rolling deploys"). A release
-- from before this migration neither reads nor hashes `patient_ids`: while one can still
-- run against the database (a rolling deploy), a list row would be missing from its
-- audit trail and would break the audit chain it seals. So an existing database starts
-- with list rows off, and `careteam audit list-rows enable` turns them on once every
-- process runs this release; a new database (an empty access log) starts with them on.
CREATE TABLE access_log_list_rows (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    enabled    boolean NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO access_log_list_rows (enabled) SELECT NOT EXISTS (SELECT 1 FROM access_log);

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
