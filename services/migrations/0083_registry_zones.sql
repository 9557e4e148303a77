-- careteam-migration: expand
-- Read model: the clinic zone each organisation last recorded in the log
-- (organisation.calendar_opened / organisation.time_zone_set), owned by the registry
-- projection (projections/caseload.py), which derives its stored onset days in it.
CREATE TABLE rm_registry_zones (
    organisation_id  uuid PRIMARY KEY,
    time_zone        text NOT NULL
);
