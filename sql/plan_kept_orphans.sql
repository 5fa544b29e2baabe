-- Planner, keep_untagged: in each repository whose rule deletes orphaned manifests and keeps N
-- of them, the N most recently pushed of its top-level orphans, to add to plan_protected (so
-- that what they reach, index children and referrers, stays with them).
--   top-level orphan: not reached now (reachable_now), and reached by no manifest the
--     repository holds (any such manifest is an orphan too): children and referrers of an
--     orphan go or stay with it and are not counted;
--   candidates: those no other protection keeps (plan_protected: young, locked, pulled...),
--     which never count toward N, as protected tags never count toward `keep`;
--   order: updated_at (ACR's lastUpdateTime, as acr purge --keep orders them), else pushed_at,
--     newest first; a missing time counts as newest (kept first), equal times go by digest
--     (ascending).
-- Binds: manifests, manifest_edges, reachable_now, plan_repositories (repository, untagged,
--        keep_untagged), plan_protected.
SELECT o.repository, o.digest, 'kept by keep_untagged: among the most recently updated orphans' AS reason
FROM (
    SELECT
        m.repository,
        m.digest,
        r.keep_untagged,
        ROW_NUMBER() OVER (
            PARTITION BY m.repository
            ORDER BY CASE WHEN COALESCE(m.updated_at, m.pushed_at) IS NULL THEN 0 ELSE 1 END NULLS LAST,
                COALESCE(m.updated_at, m.pushed_at) DESC NULLS LAST, m.digest NULLS LAST
        ) AS newest
    FROM manifests AS m
    JOIN plan_repositories AS r ON r.repository = m.repository
    WHERE r.untagged
    AND r.keep_untagged > 0
    AND NOT EXISTS (
        SELECT 1 FROM reachable_now AS k WHERE k.repository = m.repository AND k.digest = m.digest
    )
    AND NOT EXISTS (
        SELECT 1 FROM plan_protected AS p WHERE p.repository = m.repository AND p.digest = m.digest
    )
    AND NOT EXISTS (
        SELECT 1
        FROM manifest_edges AS e
        JOIN manifests AS parent ON parent.repository = e.repository AND parent.digest = e.from_digest
        WHERE e.repository = m.repository AND e.to_digest = m.digest
    )
) AS o
WHERE o.newest <= o.keep_untagged
