-- Planner, the deleted manifests the order (plan_order) could not place: they reference each
-- other in a cycle, so the snapshot is damaged and the planner makes no plan; it names the
-- first few.
-- Binds: plan_deleted_manifests, plan_order.
SELECT d.repository, d.digest
FROM plan_deleted_manifests AS d
WHERE NOT EXISTS (
    SELECT 1 FROM plan_order AS o WHERE o.repository = d.repository AND o.digest = d.digest
)
ORDER BY d.repository NULLS LAST, d.digest NULLS LAST
