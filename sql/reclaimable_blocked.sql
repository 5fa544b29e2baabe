-- Query `reclaimable_blocked` (regstat report, "reclaimable now"): the repositories where
-- `plan-gc` deletes nothing (DESIGN.md safety rules 5 and 6), as regstat.planner finds them:
-- manifests that could not be read (unreadable counts them), or crawl errors in the
-- repositories table, in snapshot.json's errors or its incomplete_repositories (errored).
-- One row per repository.
-- Binds: manifests, repositories, errors, reclaim_incomplete (repository: snapshot.json's
--        incomplete_repositories).
SELECT
    b.repository,
    MAX(b.errored) AS errored,
    CAST(SUM(CASE WHEN b.errored THEN 0 ELSE 1 END) AS BIGINT) AS unreadable
FROM (
    SELECT m.repository, FALSE AS errored
    FROM manifests AS m
    WHERE m.status <> 'ok'
    UNION ALL
    SELECT r.repository, TRUE AS errored
    FROM repositories AS r
    WHERE NOT r.complete OR r.error_count > 0
    UNION ALL
    SELECT e.repository, TRUE AS errored
    FROM errors AS e
    WHERE e.repository IS NOT NULL
    UNION ALL
    SELECT i.repository, TRUE AS errored
    FROM reclaim_incomplete AS i
) AS b
GROUP BY b.repository
