-- The delta push's hashes, one row per event instead of one per object: recording the push
-- of the 100,000-attribute benchmark event was 275,231 B-tree inserts, a third of the
-- process's CPU. `objects` holds one line per object, `<object id> <hash as 16 hex digits>`,
-- lines separated by a newline.
CREATE TABLE pushed_object_sets (
    event_uuid TEXT PRIMARY KEY NOT NULL,
    objects    TEXT NOT NULL
);
INSERT INTO pushed_object_sets (event_uuid, objects)
    SELECT event_uuid, group_concat(object_id || ' ' || lower(hex(hash)), char(10))
    FROM pushed_objects
    GROUP BY event_uuid;
DROP TABLE pushed_objects;
