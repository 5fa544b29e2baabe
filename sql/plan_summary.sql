-- Planner, per-repository counts of the actions (plan_actions): tags, manifests and uploads
-- deleted, and the upload bytes. Blobs are counted apart (plan_blob_repositories).
-- Binds: plan_actions.
SELECT
    a.repository,
    CAST(SUM(CASE WHEN a.action = 'delete_tag' THEN 1 ELSE 0 END) AS BIGINT) AS tags,
    CAST(SUM(CASE WHEN a.action = 'delete_manifest' THEN 1 ELSE 0 END) AS BIGINT) AS manifests,
    CAST(SUM(CASE WHEN a.action = 'delete_upload' THEN 1 ELSE 0 END) AS BIGINT) AS uploads,
    CAST(SUM(CASE WHEN a.action = 'delete_upload' THEN COALESCE(a.size, 0) ELSE 0 END) AS BIGINT) AS upload_bytes
FROM plan_actions AS a
WHERE a.repository IS NOT NULL
GROUP BY a.repository
