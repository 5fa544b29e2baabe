-- Planner, the actions, one row each, with the keys that order them as they are applied:
-- tags (kind_rank 0), then manifests level by level (plan_order: an index before its children,
-- a referrer before its subject), then blobs, then uploads; within a kind by repository and
-- name. The planner writes it ORDER BY kind_rank, level, repository, tag, digest, uuid to a
-- file whose row numbers are the positions (from 0): one sort, no window over the actions.
-- Binds: plan_tag_actions, plan_deleted_manifests, plan_order, plan_blob_actions
--        (digest, size, reason), plan_upload_actions (repository, uuid, size).
SELECT
    a.kind_rank,
    a.level,
    a.action,
    a.repository,
    a.tag,
    a.digest,
    a.uuid,
    CAST(a.size AS BIGINT) AS size,
    CAST(a.bytes_freed AS BIGINT) AS bytes_freed,
    a.reason,
    a.rule,
    a.media_type,
    a.artifact_type
FROM (
    SELECT
        0 AS kind_rank, 0 AS level, 'delete_tag' AS action, t.repository, t.tag, t.digest,
        CAST(NULL AS VARCHAR) AS uuid, t.size, CAST(NULL AS BIGINT) AS bytes_freed, t.reason, t.rule,
        CAST(NULL AS VARCHAR) AS media_type, CAST(NULL AS VARCHAR) AS artifact_type
    FROM plan_tag_actions AS t
    UNION ALL
    SELECT
        1, o.level, 'delete_manifest', m.repository, NULL, m.digest,
        NULL, m.size, m.bytes_freed, m.reason, m.rule,
        m.media_type, m.artifact_type
    FROM plan_deleted_manifests AS m
    JOIN plan_order AS o ON o.repository = m.repository AND o.digest = m.digest
    UNION ALL
    SELECT
        2, 0, 'delete_blob', NULL, NULL, b.digest,
        NULL, b.size, NULL, b.reason, NULL,
        NULL, NULL
    FROM plan_blob_actions AS b
    UNION ALL
    SELECT
        3, 0, 'delete_upload', u.repository, NULL, NULL,
        u.uuid, u.size, NULL, 'stale upload', NULL,
        NULL, NULL
    FROM plan_upload_actions AS u
) AS a
