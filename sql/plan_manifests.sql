-- Planner, manifest deletions: every manifest present that the plan's reachability (table
-- reachable, seeded by plan_seed) leaves out, with why and what deleting it alone frees.
--   reason: 'every tag deleted' (tags pointed to it; the rule deleted them all; tags on a
--     referrer, which follow their subject, do not count);
--     'child of a deleted index' / 'referrer of a deleted manifest' (a current tag reached it
--     only through manifests this plan deletes); otherwise it was orphaned already:
--     'child of an untagged index', 'referrer of an untagged manifest', 'referrer of a missing
--     subject' or 'untagged', as the view orphaned_manifests tells them apart.
--   rule: the policy rule governing its repository;
--   bytes_freed: blobs (its own manifest blob, config, layers, index children's manifest blobs)
--     that no other (repository, manifest) pair references.
-- Binds: manifests, manifest_edges, reachable, reachable_now, plan_tags, plan_repositories,
--        manifest_exclusive_bytes.
SELECT
    m.repository,
    m.digest,
    m.media_type,
    m.artifact_type,
    CAST(m.size AS BIGINT) AS size,
    m.subject_digest,
    CASE
        WHEN EXISTS (
            SELECT 1 FROM plan_tags AS t
            WHERE t.repository = m.repository AND t.digest = m.digest AND NOT t.follows
        ) THEN 'every tag deleted'
        WHEN n.digest IS NOT NULL AND subject.digest IS NOT NULL THEN 'referrer of a deleted manifest'
        WHEN n.via = 'index' THEN 'child of a deleted index'
        WHEN parent.digest IS NOT NULL THEN 'child of an untagged index'
        WHEN subject.digest IS NOT NULL THEN 'referrer of an untagged manifest'
        WHEN m.subject_digest IS NOT NULL THEN 'referrer of a missing subject'
        ELSE 'untagged'
    END AS reason,
    pr.rule,
    CAST(COALESCE(x.exclusive_bytes, 0) AS BIGINT) AS bytes_freed
FROM manifests AS m
LEFT JOIN reachable_now AS n ON n.repository = m.repository AND n.digest = m.digest
LEFT JOIN (
    SELECT DISTINCT e.repository, e.to_digest AS digest
    FROM manifest_edges AS e
    WHERE e.via = 'index'
) AS parent ON parent.repository = m.repository AND parent.digest = m.digest
LEFT JOIN manifests AS subject
    ON subject.repository = m.repository AND subject.digest = m.subject_digest
LEFT JOIN plan_repositories AS pr ON pr.repository = m.repository
LEFT JOIN manifest_exclusive_bytes AS x ON x.repository = m.repository AND x.manifest_digest = m.digest
WHERE NOT EXISTS (
    SELECT 1 FROM reachable AS k WHERE k.repository = m.repository AND k.digest = m.digest
)
