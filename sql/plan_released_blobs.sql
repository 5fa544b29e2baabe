-- Planner, the blobs whose bytes the plan counts: those it deletes (plan_blob_actions), or, on
-- an estimate (parameters 1 and 2: TRUE), those its deleted manifests release, which the
-- registry frees itself.
-- Binds: plan_released, plan_blob_actions; parameters: whether the plan is an estimate, twice.
SELECT r.digest, r.size
FROM plan_released AS r
WHERE CAST(? AS BOOLEAN)
AND r.reason = 'last reference deleted'
UNION ALL
SELECT b.digest, b.size
FROM plan_blob_actions AS b
WHERE NOT CAST(? AS BOOLEAN)
