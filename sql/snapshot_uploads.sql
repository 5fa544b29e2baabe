-- Snapshot table `uploads`: uploads in progress. Binds: stage_uploads.
SELECT repository, uuid, started_at, size, modified_at
FROM stage_uploads
ORDER BY repository, uuid
