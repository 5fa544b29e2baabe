-- Planner, subjects of kept referrers: a referrer the plan keeps (a protected signature, say)
-- whose subject it would delete would be left pointing at nothing, so the subject is kept
-- too. The planner adds these to plan_protected and computes reachability again, until
-- none is left.
-- Binds: manifests, reachable (what the plan keeps).
SELECT DISTINCT m.repository, m.subject_digest AS digest, 'subject of a kept referrer' AS reason
FROM manifests AS m
JOIN manifests AS s ON s.repository = m.repository AND s.digest = m.subject_digest
WHERE EXISTS (
    SELECT 1 FROM reachable AS k WHERE k.repository = m.repository AND k.digest = m.digest
)
AND NOT EXISTS (
    SELECT 1 FROM reachable AS r WHERE r.repository = m.repository AND r.digest = m.subject_digest
)
