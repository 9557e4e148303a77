-- Organisations and their staff: the names portals show next to ids, and the roles a
-- care-team assignment is checked against. Staff records are not patient data. Every
-- change is kept in directory_changes (who, when, what), newest rows never updated.
CREATE TABLE organisations (
    organisation_id uuid PRIMARY KEY,
    name text NOT NULL,
    time_zone text NOT NULL DEFAULT 'UTC',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A person is listed per organisation: one organisation cannot claim another's user id.
CREATE TABLE staff (
    user_id uuid NOT NULL,
    organisation_id uuid NOT NULL,
    display_name text NOT NULL,
    credentials text,
    roles text[] NOT NULL,
    active boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, user_id)
);
CREATE INDEX staff_by_organisation ON staff (organisation_id, lower(display_name), user_id);

CREATE TABLE directory_changes (
    change_id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor_id uuid NOT NULL,
    organisation_id uuid NOT NULL,
    subject_id uuid NOT NULL,
    kind text NOT NULL,
    detail jsonb NOT NULL
);
