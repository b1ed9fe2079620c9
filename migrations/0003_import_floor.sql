-- The import floor replaces the checkpoint as the rule for what is imported: an entry never
-- pushed is due unless it is older than the floor. The floor is set at the first run (from
-- MISP_FEED_IMPORT_FROM_DATE, or the run's start), lowered by `reset --since` or an earlier
-- MISP_FEED_IMPORT_FROM_DATE, and taken from the platform when a ledger adopts the state the
-- Python connector left. Ledgers from before this step take their checkpoint as the floor:
-- that is what decided, until now, what they imported.
ALTER TABLE checkpoint ADD COLUMN import_floor INTEGER;
-- first_run | import_from_date | platform | reset
ALTER TABLE checkpoint ADD COLUMN floor_origin TEXT;
-- The connector state last delivered to the platform by a ping (its exact text), so that a
-- start can tell its own state from a reset made on the platform.
ALTER TABLE checkpoint ADD COLUMN sent_state TEXT;
-- 1 from an operator's reset until the platform has been told the ledger's state.
ALTER TABLE checkpoint ADD COLUMN reset_pending INTEGER NOT NULL DEFAULT 0;
UPDATE checkpoint SET import_floor = last_event_timestamp, floor_origin = 'first_run'
    WHERE last_event_timestamp IS NOT NULL;
-- The manifest key as the feed lists it (its case may differ from the canonical uuid): the
-- file is requested by that name when the manifest is not modified since.
ALTER TABLE manifest_entries ADD COLUMN key TEXT;
