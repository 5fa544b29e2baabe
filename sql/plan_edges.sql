-- Planner, order: pairs of deleted manifests of one repository where the first must be
-- deleted before the second, so that no step of applying the plan leaves a dangling
-- reference: an index before its children, a referrer before its subject (manifest_edges,
-- read the other way for referrers).
-- Binds: manifest_edges, plan_deleted_manifests (repository, digest, ...).
SELECT e.repository, e.first_digest, e.then_digest
FROM (
    SELECT
        m.repository,
        CASE WHEN m.via = 'index' THEN m.from_digest ELSE m.to_digest END AS first_digest,
        CASE WHEN m.via = 'index' THEN m.to_digest ELSE m.from_digest END AS then_digest
    FROM manifest_edges AS m
) AS e
WHERE EXISTS (
    SELECT 1 FROM plan_deleted_manifests AS a WHERE a.repository = e.repository AND a.digest = e.first_digest
)
AND EXISTS (
    SELECT 1 FROM plan_deleted_manifests AS b WHERE b.repository = e.repository AND b.digest = e.then_digest
)
