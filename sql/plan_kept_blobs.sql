-- Planner, the blobs a kept manifest references: each blob (its own manifest blob, config,
-- layer or index child; view manifest_references) of a (repository, manifest) pair the plan
-- keeps (table reachable, once it holds what the plan keeps). Every other referenced blob loses
-- its last reference to the plan's deletions (plan_last_references).
-- Binds: manifest_references, reachable.
SELECT DISTINCT r.digest
FROM manifest_references AS r
JOIN reachable AS k ON k.repository = r.repository AND k.digest = r.manifest_digest
