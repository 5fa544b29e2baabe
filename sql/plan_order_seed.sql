-- Planner, order of manifest deletions, level 0: deleted manifests that no other deleted
-- manifest must precede (no plan_edges row leads to them).
-- Binds: plan_deleted_manifests, plan_edges (repository, first_digest, then_digest).
SELECT d.repository, d.digest, CAST(0 AS INTEGER) AS level
FROM plan_deleted_manifests AS d
WHERE NOT EXISTS (
    SELECT 1 FROM plan_edges AS e WHERE e.repository = d.repository AND e.then_digest = d.digest
)
