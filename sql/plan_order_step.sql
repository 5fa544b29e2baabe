-- Planner, order of manifest deletions, one step: the deleted manifests not ordered yet whose
-- every predecessor (an index listing them, a referrer of them) is ordered, at the next level.
-- The planner repeats it until it adds nothing; manifests left unordered form a cycle.
-- Binds: plan_deleted_manifests, plan_edges, plan_order (repository, digest, level).
SELECT
    d.repository,
    d.digest,
    CAST((SELECT MAX(o.level) FROM plan_order AS o) + 1 AS INTEGER) AS level
FROM plan_deleted_manifests AS d
WHERE NOT EXISTS (
    SELECT 1 FROM plan_order AS done WHERE done.repository = d.repository AND done.digest = d.digest
)
AND NOT EXISTS (
    SELECT 1
    FROM plan_edges AS e
    WHERE e.repository = d.repository
    AND e.then_digest = d.digest
    AND NOT EXISTS (
        SELECT 1 FROM plan_order AS p WHERE p.repository = e.repository AND p.digest = e.first_digest
    )
)
