-- View `stale_uploads`: every upload in progress with its age at the snapshot's end, oldest
-- first. Which age is stale is the reader's call (the registry's own purge default is 7 days).
--   age_seconds, age_days: from started_at (else the newest file time, modified_at) to
--                          snapshot_info.taken_at; whole seconds, whole days.
-- The age is taken apart with EXTRACT over the interval (DAY, HOUR, MINUTE, SECOND), which
-- DuckDB, Spark SQL and Trino all spell the same way; date-difference functions are not.
-- Binds: uploads, snapshot_info (one row: id, taken_at, complete, ...).
SELECT
    a.repository,
    a.uuid,
    a.started_at,
    a.modified_at,
    a.size,
    CAST(EXTRACT(DAY FROM a.age) AS BIGINT) * 86400
        + CAST(EXTRACT(HOUR FROM a.age) AS BIGINT) * 3600
        + CAST(EXTRACT(MINUTE FROM a.age) AS BIGINT) * 60
        + CAST(EXTRACT(SECOND FROM a.age) AS BIGINT) AS age_seconds,
    CAST(EXTRACT(DAY FROM a.age) AS BIGINT) AS age_days
FROM (
    SELECT
        u.repository,
        u.uuid,
        u.started_at,
        u.modified_at,
        CAST(u.size AS BIGINT) AS size,
        i.taken_at - COALESCE(u.started_at, u.modified_at) AS age
    FROM uploads AS u
    CROSS JOIN snapshot_info AS i
) AS a
ORDER BY age_seconds DESC NULLS LAST, a.repository NULLS LAST, a.uuid NULLS LAST
