-- Planner, per-repository blob figures: the released blobs (table plan_released_blobs: digest,
-- size) that exactly one repository references or links, counted under it. Blobs that
-- several repositories shared, or that none references or links, count only in the plan's
-- totals. One join of the released blobs with every (repository, blob) row that names them,
-- and one group-by: a blob has one repository when the smallest and greatest agree.
-- Binds: plan_last_references, repository_blobs, plan_released_blobs.
SELECT o.repository, CAST(COUNT(*) AS BIGINT) AS blobs, CAST(SUM(o.size) AS BIGINT) AS bytes
FROM (
    SELECT p.digest, MIN(h.repository) AS repository, MAX(p.size) AS size
    FROM plan_released_blobs AS p
    JOIN (
        SELECT l.repository, l.digest
        FROM plan_last_references AS l  -- every reference to a released blob
        UNION ALL
        SELECT rb.repository, rb.digest
        FROM repository_blobs AS rb
    ) AS h ON h.digest = p.digest
    GROUP BY p.digest
    HAVING MIN(h.repository) = MAX(h.repository)
) AS o
GROUP BY o.repository
