-- Reachability, one step: the manifests that the frontier (the rows of `reachable` at its
-- greatest depth) reaches within its repository along manifest_edges, as index children
-- (via 'index') or as referrers whose subject it is (via 'referrer'), and that `reachable`
-- does not hold yet. regstat.analysis.reachability appends them at depth + 1 and repeats until a step
-- adds nothing. Only manifests the repository holds are reached. One row per
-- (repository, digest).
-- Binds: reachable (repository, digest, depth, via), manifest_edges, manifests.
SELECT
    step.repository,
    step.digest,
    MIN(step.depth) AS depth,
    MIN(step.via) AS via
FROM (
    SELECT f.repository, e.to_digest AS digest, f.depth + 1 AS depth, e.via
    FROM reachable AS f
    JOIN manifest_edges AS e ON e.repository = f.repository AND e.from_digest = f.digest
    WHERE f.depth = (SELECT MAX(r.depth) FROM reachable AS r)
) AS step
WHERE EXISTS (
    SELECT 1 FROM manifests AS p WHERE p.repository = step.repository AND p.digest = step.digest
)
AND NOT EXISTS (
    SELECT 1 FROM reachable AS done WHERE done.repository = step.repository AND done.digest = step.digest
)
GROUP BY step.repository, step.digest
