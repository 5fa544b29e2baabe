-- Reachability, one step: the manifests that the frontier (the rows of `reachable` at its
-- greatest depth) reaches within its repository, as index children (via 'index') or as
-- referrers whose subject it is (via 'referrer'), and that `reachable` does not hold yet.
-- regstat.reachability appends them at depth + 1 and repeats until a step adds nothing.
-- Only manifests the repository holds are reached. One row per (repository, digest).
-- Binds: reachable (repository, digest, depth, via), descriptors, manifests.
SELECT
    step.repository,
    step.digest,
    MIN(step.depth) AS depth,
    MIN(step.via) AS via
FROM (
    SELECT f.repository, d.digest, f.depth + 1 AS depth, 'index' AS via
    FROM reachable AS f
    JOIN descriptors AS d
        ON d.repository = f.repository AND d.manifest_digest = f.digest AND d.role = 'manifest'
    WHERE f.depth = (SELECT MAX(r.depth) FROM reachable AS r)
    UNION ALL
    SELECT f.repository, m.digest, f.depth + 1 AS depth, 'referrer' AS via
    FROM reachable AS f
    JOIN manifests AS m
        ON m.repository = f.repository AND m.subject_digest = f.digest
    WHERE f.depth = (SELECT MAX(r.depth) FROM reachable AS r)
) AS step
WHERE EXISTS (
    SELECT 1 FROM manifests AS p WHERE p.repository = step.repository AND p.digest = step.digest
)
AND NOT EXISTS (
    SELECT 1 FROM reachable AS done WHERE done.repository = step.repository AND done.digest = step.digest
)
GROUP BY step.repository, step.digest
