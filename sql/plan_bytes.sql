-- Planner, the bytes the plan frees, in two parts: the blobs it counts (plan_released_blobs)
-- and the stale uploads it deletes.
-- Binds: plan_released_blobs, plan_upload_actions.
SELECT
    (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM plan_released_blobs AS b) AS blob_bytes,
    (SELECT CAST(COALESCE(SUM(u.size), 0) AS BIGINT) FROM plan_upload_actions AS u) AS upload_bytes
