-- careteam-migration: expand
-- The read audit's group insert (services/audit/reads.py) as a function whose statement is
-- planned once per session. Sent as a statement, PostgreSQL planned it anew for every
-- batch (its custom plan looked cheaper than a generic one, the arrays' lengths being
-- known): about 0.11 ms of PostgreSQL's CPU in every batch's 0.35 ms (docs/performance.md,
-- "Seventh pass"). `plan_cache_mode` applies inside the function only.
--
-- One row per record: a read of one patient names it in `patient_id`; a read of several
-- names them all in `patient_ids` once list rows are enabled (`access_log_list_rows`,
-- migration 0084), else one row per patient. The arguments: per record its time, actor,
-- role, organisation, operation, reason, purpose, request id, and the first and last of its
-- field paths (1-based, in `fields`) and of its patients (in `patients`).
CREATE OR REPLACE FUNCTION record_reads(
    at timestamptz[], actor uuid[], actor_role text[], organisation uuid[], operation text[],
    reason text[], purpose text[], request text[], f_from int[], f_to int[],
    fields text[], patients uuid[], p_from int[], p_to int[]
) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    INSERT INTO access_log (at, actor_id, role, organisation_id, patient_id, patient_ids,
                            operation, outcome, reason, purpose_of_use, request_id, fields)
    SELECT r.at, r.actor_id, r.role, r.organisation_id,
           CASE WHEN s.lists AND r.p_from < r.p_to THEN NULL ELSE patients[g.i] END,
           CASE WHEN s.lists AND r.p_from < r.p_to THEN patients[r.p_from:r.p_to] END,
           r.operation, 'allowed', r.reason, r.purpose_of_use, r.request_id,
           fields[r.f_from:r.f_to]
    FROM unnest(record_reads.at, actor, actor_role, organisation, record_reads.operation,
                record_reads.reason, purpose, request, f_from, f_to, p_from, p_to)
         WITH ORDINALITY AS r(at, actor_id, role, organisation_id, operation, reason,
                              purpose_of_use, request_id, f_from, f_to, p_from, p_to, n)
    CROSS JOIN (SELECT coalesce((SELECT enabled FROM access_log_list_rows), false) AS lists) s
    CROSS JOIN LATERAL generate_series(r.p_from, CASE WHEN s.lists THEN r.p_from ELSE r.p_to END)
         AS g(i)
    ORDER BY r.n, g.i;
END
$$;
