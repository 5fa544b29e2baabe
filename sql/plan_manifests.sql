-- Planner, manifest deletions: every manifest present that the plan's reachability (table
-- reachable, seeded by plan_seed) leaves out, with why and what deleting it alone frees.
--   reason: 'every tag deleted' (tags pointed to it; the rule deleted them all; tags on a
--     referrer, which follow their subject, do not count);
--     'child of a deleted index' / 'referrer of a deleted manifest' (a current tag reached it
--     only through manifests this plan deletes); otherwise it was orphaned already, and the
--     reason is the view orphan_reasons' ('child of an orphaned index', 'referrer of an
--     orphaned manifest', 'referrer of a missing subject' or 'untagged').
--   rule: the policy rule governing its repository;
--   bytes_freed: blobs (its own manifest blob, config, layers, index children's manifest blobs)
--     that no other (repository, manifest) pair references.
--     As the view manifest_exclusive_bytes computes it, for the manifests left out only: a
--     blob only one pair references, when that pair is not kept, is one whose last reference
--     the plan deletes (plan_last_references), so the rows of the kept pairs, most of them, are
--     not summed.
-- Binds: orphan_reasons, reachable, reachable_now, plan_tags, plan_repositories,
--        plan_last_references, plan_last_reference_blobs.
SELECT
    o.repository,
    o.digest,
    o.media_type,
    o.artifact_type,
    CAST(o.size AS BIGINT) AS size,
    o.subject_digest,
    CASE
        WHEN EXISTS (
            SELECT 1 FROM plan_tags AS t
            WHERE t.repository = o.repository AND t.digest = o.digest AND NOT t.follows
        ) THEN 'every tag deleted'
        WHEN n.digest IS NOT NULL AND o.subject_present THEN 'referrer of a deleted manifest'
        WHEN n.via = 'index' THEN 'child of a deleted index'
        ELSE o.reason
    END AS reason,
    pr.rule,
    CAST(COALESCE(x.exclusive_bytes, 0) AS BIGINT) AS bytes_freed
FROM orphan_reasons AS o
LEFT JOIN reachable_now AS n ON n.repository = o.repository AND n.digest = o.digest
LEFT JOIN plan_repositories AS pr ON pr.repository = o.repository
LEFT JOIN (
    SELECT r.repository, r.manifest_digest, SUM(b.size) AS exclusive_bytes
    FROM plan_last_references AS r
    JOIN plan_last_reference_blobs AS b ON b.digest = r.digest AND b.manifests = 1
    WHERE r.manifests = 1
    GROUP BY r.repository, r.manifest_digest
) AS x ON x.repository = o.repository AND x.manifest_digest = o.digest
WHERE NOT EXISTS (
    SELECT 1 FROM reachable AS k WHERE k.repository = o.repository AND k.digest = o.digest
)
