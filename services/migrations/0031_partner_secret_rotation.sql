-- Webhook secret rotation with an overlap (services/partners/registry.py, update): the
-- secret a rotation replaced keeps signing, beside the new one, until
-- previous_secret_retires_at, so a partner can deploy the new secret without losing a
-- delivery. A second rotation is refused until then.

ALTER TABLE partner_keys
    ADD COLUMN previous_webhook_secret text,
    ADD COLUMN previous_secret_retires_at timestamptz,
    ADD CONSTRAINT partner_keys_previous_secret CHECK (
        (previous_webhook_secret IS NULL) = (previous_secret_retires_at IS NULL));
