-- Planner, upload deletions: the stale uploads (plan_uploads, sql/plan_uploads.sql), where the
-- plan may delete blobs at all (parameter 1: FALSE on an estimate).
-- Binds: plan_uploads; parameter: whether blobs and uploads may be deleted.
SELECT u.repository, u.uuid, u.size, u.started_at
FROM plan_uploads AS u
WHERE CAST(? AS BOOLEAN)
