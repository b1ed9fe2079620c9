-- A destination is a file of the bundle folder or an OpenCTI work: say which, instead of
-- guessing it from the text. Rows written before this step are classified once, here: the
-- directory sink always wrote absolute `.json` paths, OpenCTI work ids never end that way.
ALTER TABLE events ADD COLUMN destination_kind TEXT
    CHECK (destination_kind IN ('file', 'work'));
ALTER TABLE event_history ADD COLUMN destination_kind TEXT
    CHECK (destination_kind IN ('file', 'work'));
UPDATE events SET destination_kind =
    CASE WHEN destination LIKE '/%.json' THEN 'file' ELSE 'work' END
    WHERE destination IS NOT NULL;
UPDATE event_history SET destination_kind =
    CASE WHEN destination LIKE '/%.json' THEN 'file' ELSE 'work' END
    WHERE destination IS NOT NULL;
