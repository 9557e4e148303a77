-- Per-patient order with failures isolated (services/partners/worker.py).
--
-- partner_dead_letters becomes the list of every message a webhook feed set aside: a
-- message whose attempt failed ('retrying' until its next attempt, 'dead' after the
-- last), and the same patient's later messages waiting behind it ('held'). Only that
-- patient's later messages wait; other patients flow on. Each row keeps the log place of
-- its event, so a patient's set-aside messages go out in log order, and its attempt count,
-- so the count survives a restart and is the one the webhook header and the admin view
-- show.

ALTER TABLE partner_dead_letters
    ADD COLUMN tx_id xid8,
    ADD COLUMN position bigint,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN attempts_at_request integer NOT NULL DEFAULT 0;

UPDATE partner_dead_letters d SET tx_id = e.tx_id, position = e.position
FROM events e WHERE e.event_id = d.event_id;

ALTER TABLE partner_dead_letters
    ALTER COLUMN tx_id SET NOT NULL,
    ALTER COLUMN position SET NOT NULL,
    DROP CONSTRAINT partner_dead_letters_status_check,
    ADD CONSTRAINT partner_dead_letters_status_check CHECK (status IN ('retrying', 'held',
        'dead', 'redelivery_requested', 'delivered', 'redelivered', 'withheld'));

-- The messages still waiting, per patient in log order (the head of each queue first).
CREATE INDEX partner_dead_letters_open ON partner_dead_letters
    (partner_id, patient_id, tx_id, position)
    WHERE status IN ('retrying', 'held', 'dead', 'redelivery_requested');

-- The accounting of disclosures records every webhook attempt that sent data, with its
-- outcome: a receiver that answered an error may still have kept what it received.
ALTER TABLE disclosures
    ADD COLUMN outcome text NOT NULL DEFAULT 'delivered' CHECK (outcome IN ('delivered', 'failed')),
    ADD COLUMN attempt integer,
    ADD COLUMN error text;
