-- Planner, reachability seed (depth 0), in place of reachable_seed: the manifests that the
-- tags the plan keeps point to (via 'tag'; a tag on a referrer, `follows`, is no seed: its
-- manifest is kept when its subject is) and the protected ones (via 'protected').
-- regstat.analysis.reachability then adds what they reach; every manifest left out is deleted.
-- One row per (repository, digest).
-- Binds: plan_tags (repository, tag, digest, deleted, follows, ...), plan_protected, manifests.
SELECT s.repository, s.digest, CAST(0 AS INTEGER) AS depth, MAX(s.via) AS via
FROM (
    SELECT t.repository, t.digest, 'tag' AS via
    FROM plan_tags AS t
    WHERE NOT t.deleted AND NOT t.follows
    UNION ALL
    SELECT p.repository, p.digest, 'protected' AS via
    FROM plan_protected AS p
) AS s
WHERE EXISTS (
    SELECT 1 FROM manifests AS m WHERE m.repository = s.repository AND m.digest = s.digest
)
GROUP BY s.repository, s.digest
