-- Compliance: read auditing details, the tamper-evident chain, and immutability.

-- Which fields a read returned, and the transaction that wrote the row (so the chain
-- sealer can follow access_log gap-safely, like the event log).
ALTER TABLE access_log ADD COLUMN fields text[] NOT NULL DEFAULT '{}';
ALTER TABLE access_log ADD COLUMN tx_id xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX access_log_chain_order ON access_log (tx_id, id);

-- The hash chain: one link per event and per access record, in the order sealed.
-- link_hash = sha256(previous link_hash || row_hash); row_hash covers the whole row.
CREATE TABLE audit_chain (
    seq        bigint PRIMARY KEY,
    source     text NOT NULL CHECK (source IN ('event', 'access')),
    source_id  bigint NOT NULL,
    row_hash   bytea NOT NULL,
    link_hash  bytea NOT NULL,
    sealed_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_id)
);

-- The application never updates or deletes these rows. (Crypto-shredding forgets a
-- patient by deleting their key, not their events.) A superuser can still disable the
-- triggers; that is what `careteam audit verify` is for.
CREATE FUNCTION careteam_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'careteam: % on % is not allowed (append-only)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION careteam_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION careteam_refuse_change();
CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION careteam_refuse_change();
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION careteam_refuse_change();
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION careteam_refuse_change();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION careteam_refuse_change();
