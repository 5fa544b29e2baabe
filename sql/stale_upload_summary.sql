-- Query `stale_upload_summary` (regstat report): one row, the uploads in progress older than
-- the grace period (from started_at, else the newest file time; without either an upload is
-- young), as plan-gc counts them stale, wherever they are.
--   uploads; upload_bytes: their known sizes summed; unsized: how many have no size (S3 keeps
--   their bytes in multipart uploads); oldest_at: the earliest start among them.
-- Binds: uploads, plan_settings (one row: grace_cutoff).
SELECT
    CAST(COUNT(*) AS BIGINT) AS uploads,
    CAST(COALESCE(SUM(u.size), 0) AS BIGINT) AS upload_bytes,
    CAST(SUM(CASE WHEN u.size IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unsized,
    MIN(COALESCE(u.started_at, u.modified_at)) AS oldest_at
FROM uploads AS u
CROSS JOIN plan_settings AS s
WHERE COALESCE(u.started_at, u.modified_at) <= s.grace_cutoff
