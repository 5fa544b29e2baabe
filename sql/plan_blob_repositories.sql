-- Planner, per-repository blob figures: the released blobs (table plan_released_blobs: digest,
-- size) that exactly one repository references or links, counted under it. Blobs that
-- several repositories shared, or that none references or links, count only in the plan's
-- totals. Each side keeps the released blobs before the union, which is then small.
-- Binds: repository_references, repository_blobs, plan_released_blobs.
SELECT o.repository, CAST(COUNT(*) AS BIGINT) AS blobs, CAST(SUM(o.size) AS BIGINT) AS bytes
FROM (
    SELECT h.digest, MIN(h.repository) AS repository, MAX(p.size) AS size
    FROM (
        SELECT rr.repository, rr.digest
        FROM repository_references AS rr
        WHERE rr.kept_manifests = 0  -- true of every row of a released blob: fewer rows to probe
        AND EXISTS (SELECT 1 FROM plan_released_blobs AS x WHERE x.digest = rr.digest)
        UNION
        SELECT rb.repository, rb.digest
        FROM repository_blobs AS rb
        WHERE EXISTS (SELECT 1 FROM plan_released_blobs AS y WHERE y.digest = rb.digest)
    ) AS h
    JOIN plan_released_blobs AS p ON p.digest = h.digest
    GROUP BY h.digest
    HAVING COUNT(*) = 1
) AS o
GROUP BY o.repository
