-- Audit evidence (docs/compliance.md): the chain also covers the accounting of
-- disclosures and the partner registry's history, and each link names what it seals
-- (patient, the row's own time, its place in its table's order, a hash of its content
-- without that place), so that a finding can say whose record changed, how, and since when.

ALTER TABLE audit_chain DROP CONSTRAINT audit_chain_source_check;
ALTER TABLE audit_chain ADD CONSTRAINT audit_chain_source_check
    CHECK (source IN ('event', 'access', 'disclosure', 'partner_change'));

-- Descriptive columns, outside the link hash: changing them can only change how a
-- finding is worded, never hide one (the link covers the hash of the whole row).
ALTER TABLE audit_chain ADD COLUMN patient_id uuid;
ALTER TABLE audit_chain ADD COLUMN row_at timestamptz;
-- The row's transaction id (xid8 as a number, so the sealer can COPY it).
ALTER TABLE audit_chain ADD COLUMN source_tx bigint;
ALTER TABLE audit_chain ADD COLUMN content_hash bytea;

-- Links sealed before this migration learn their patient, time and order (the rows are
-- still there); their content hash stays unknown, so a reordering among them is reported
-- as an edit.
ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_append_only;
UPDATE audit_chain c SET patient_id = e.patient_id, row_at = e.recorded_at, source_tx = e.tx_id::text::bigint
    FROM events e WHERE c.source = 'event' AND e.position = c.source_id;
UPDATE audit_chain c SET patient_id = l.patient_id, row_at = l.at, source_tx = l.tx_id::text::bigint
    FROM access_log l WHERE c.source = 'access' AND l.id = c.source_id;
ALTER TABLE audit_chain ENABLE TRIGGER audit_chain_append_only;
