-- The ledger's current schema, used to create a new ledger in one step. A ledger made by an
-- older binary reaches the same schema through the numbered upgrade steps beside this file;
-- a test checks that both roads end in the same tables.
--
-- The ledger: what the connector knows of the feed and of every event it handled.
-- Timestamps are RFC 3339 UTC text; feed timestamps are epoch seconds as the manifest gives them.

-- One row per sync run.
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    -- running | completed | completed_with_errors | failed | interrupted
    status       TEXT NOT NULL,
    source       TEXT NOT NULL,
    pushed       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    work_id      TEXT,
    message      TEXT
);

-- The single checkpoint row: the Python connector's state keys, plus manifest validators.
CREATE TABLE checkpoint (
    id                     INTEGER PRIMARY KEY CHECK (id = 1),
    last_run               TEXT,
    last_event_timestamp   INTEGER,
    manifest_etag          TEXT,
    manifest_last_modified TEXT,
    last_file              TEXT,
    updated_at             TEXT NOT NULL,
    -- entries older than this (epoch seconds) are not imported, and recorded as too_old
    import_floor           INTEGER,
    -- first_run | import_from_date | platform | reset: what set the floor
    floor_origin           TEXT,
    -- the connector state last delivered to the platform by a ping, as sent
    sent_state             TEXT,
    -- 1 from an operator's reset until the platform has been told the ledger's state
    reset_pending          INTEGER NOT NULL DEFAULT 0,
    -- the filters and size limit that decided the filtered and refused events
    decision_fingerprint   TEXT,
    -- the conversion options the object hashes were made under
    convert_fingerprint    TEXT
);

-- Every manifest entry seen, as the feed last listed it.
CREATE TABLE manifest_entries (
    uuid          TEXT PRIMARY KEY,
    timestamp     INTEGER NOT NULL,
    info          TEXT,
    date          TEXT,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    last_seen_run INTEGER,
    -- the key as the feed lists it (any case); the file is requested by this name
    key           TEXT,
    -- what the entry says of its event (tags, organisations, levels), as JSON
    facts         TEXT
);

-- Every S3 object seen.
CREATE TABLE s3_objects (
    key           TEXT PRIMARY KEY,
    etag          TEXT,
    size          INTEGER NOT NULL DEFAULT 0,
    last_modified TEXT,
    -- pending | done | failed | deleted
    status        TEXT NOT NULL,
    events        INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    last_seen_run INTEGER,
    updated_at    TEXT NOT NULL
);

-- Per event: its current state.
CREATE TABLE events (
    uuid               TEXT PRIMARY KEY,
    -- the manifest key or the S3 object key the event came from
    source_key         TEXT NOT NULL,
    manifest_timestamp INTEGER,
    info               TEXT,
    content_sha256     TEXT,
    bundle_sha256      TEXT,
    -- pending | in_flight | pushed | failed | gave_up | too_old | filtered | refused
    status             TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    next_attempt_at    TEXT,
    destination        TEXT,
    messages           INTEGER,
    pushed_at          TEXT,
    last_run           INTEGER,
    updated_at         TEXT NOT NULL,
    -- file | work: what `destination` names
    destination_kind   TEXT CHECK (destination_kind IN ('file', 'work'))
);
CREATE INDEX events_by_status ON events(status);
CREATE INDEX events_by_manifest_timestamp ON events(manifest_timestamp);

-- Append-only audit trail: every decision and attempt for every event.
CREATE TABLE event_history (
    id             INTEGER PRIMARY KEY,
    event_uuid     TEXT NOT NULL,
    run_id         INTEGER,
    at             TEXT NOT NULL,
    -- queued | skipped | in_flight | pushed | failed | gave_up | reset | retry
    action         TEXT NOT NULL,
    detail         TEXT,
    destination    TEXT,
    content_sha256 TEXT,
    bundle_sha256  TEXT,
    destination_kind TEXT CHECK (destination_kind IN ('file', 'work'))
);
CREATE INDEX event_history_by_event ON event_history(event_uuid, id);

-- The delta push: per pushed event, a short hash of each STIX object's stable content, as the
-- platform confirmed it. One line per object, `<object id> <hash as 16 hex digits>`, lines
-- separated by a newline.
CREATE TABLE pushed_object_sets (
    event_uuid TEXT PRIMARY KEY NOT NULL,
    objects    TEXT NOT NULL
);
