-- careteam-migration: expand
-- careteam-migration-runs: outside-transaction
-- The index of list rows' patients (migration 0084), built CONCURRENTLY so the access log
-- keeps taking every read's audit row while it is built. Run outside a transaction, one
-- statement at a time; an index left invalid by a crash during the build is dropped and
-- built again when the migration runs again.
DROP INDEX CONCURRENTLY IF EXISTS access_log_patient_ids;
CREATE INDEX CONCURRENTLY access_log_patient_ids ON access_log USING gin (patient_ids)
    WHERE patient_ids IS NOT NULL;
