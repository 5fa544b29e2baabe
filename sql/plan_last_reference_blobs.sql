-- Planner, the blobs the plan deletes the last references to (table plan_last_references),
-- one row each, as view blob_references has them:
--   size: the stored size (blobs.size), else the largest size a descriptor gives it;
--   manifests: the (repository, manifest) pairs referencing it, all deleted by the plan;
--   stored, modified_at: from blobs (stored FALSE where the snapshot has no stored blob).
-- Binds: plan_last_references, blobs.
SELECT
    g.digest,
    CAST(COALESCE(b.size, g.size) AS BIGINT) AS size,
    g.manifests,
    COALESCE(b.stored, FALSE) AS stored,
    b.modified_at
FROM (
    SELECT l.digest, MAX(l.size) AS size, CAST(SUM(l.manifests) AS BIGINT) AS manifests
    FROM plan_last_references AS l
    GROUP BY l.digest
) AS g
LEFT JOIN blobs AS b ON b.digest = g.digest
