-- The delta push: for each pushed event, a short hash of each STIX object's stable content,
-- as the platform confirmed it. An updated event then sends only the objects that are new or
-- changed (and its report). Written in the transaction that records the push as confirmed.
-- Ledgers from before this step have no hashes: their events' next push is a full one.
CREATE TABLE pushed_objects (
    event_uuid TEXT NOT NULL,
    object_id  TEXT NOT NULL,
    hash       BLOB NOT NULL,
    PRIMARY KEY (event_uuid, object_id)
) WITHOUT ROWID;
-- The conversion options the hashes were made under: when they change, every event's next
-- push is a full one.
ALTER TABLE checkpoint ADD COLUMN convert_fingerprint TEXT;
