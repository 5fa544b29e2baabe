-- Planner, blob deletions: the released blobs (plan_released, sql/plan_blobs.sql) that are
-- stored and past the grace period, where the plan may delete blobs at all (parameter 1:
-- FALSE on an estimate, docs/design.md safety rules 5 and 6).
-- Binds: plan_released; parameter: whether blobs may be deleted.
SELECT r.digest, r.size, r.reason
FROM plan_released AS r
WHERE r.stored
AND NOT r.young
AND CAST(? AS BOOLEAN)
