-- Planner, tag deletions: the tags the rules delete, and the tags on referrers (follows) whose
-- manifest the plan deletes (they go with their subject).
-- Binds: plan_tags (repository, tag, digest, size, deleted, follows, reason, rule),
--        plan_deleted_manifests.
SELECT
    t.repository,
    t.tag,
    t.digest,
    t.size,
    CASE WHEN t.deleted THEN t.reason ELSE 'its manifest, a referrer, goes with its subject' END AS reason,
    t.rule
FROM plan_tags AS t
WHERE t.deleted
OR (
    t.follows AND EXISTS (
        SELECT 1 FROM plan_deleted_manifests AS d WHERE d.repository = t.repository AND d.digest = t.digest
    )
)
