-- Planner, the repositories where a plan deletes nothing (docs/design.md safety rules 5 and
-- 6): manifests that could not be read (unreadable counts them; status: the least of their
-- statuses), or crawl errors in the repositories table, in snapshot.json's errors or its
-- incomplete_repositories (errored). One row per repository. The report's "reclaimable now"
-- reads it too.
-- Binds: manifests, repositories, errors, plan_incomplete (repository: snapshot.json's
--        incomplete_repositories).
SELECT
    b.repository,
    MAX(b.errored) AS errored,
    CAST(SUM(CASE WHEN b.errored THEN 0 ELSE 1 END) AS BIGINT) AS unreadable,
    MIN(b.status) AS status
FROM (
    SELECT m.repository, FALSE AS errored, m.status
    FROM manifests AS m
    WHERE m.status <> 'ok'
    UNION ALL
    SELECT r.repository, TRUE AS errored, CAST(NULL AS VARCHAR) AS status
    FROM repositories AS r
    WHERE NOT r.complete OR r.error_count > 0
    UNION ALL
    SELECT e.repository, TRUE AS errored, CAST(NULL AS VARCHAR) AS status
    FROM errors AS e
    WHERE e.repository IS NOT NULL AND e.repository <> ''
    UNION ALL
    SELECT i.repository, TRUE AS errored, CAST(NULL AS VARCHAR) AS status
    FROM plan_incomplete AS i
) AS b
GROUP BY b.repository
ORDER BY b.repository NULLS LAST
