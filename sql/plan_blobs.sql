-- Planner, blobs the plan releases: stored blobs no manifest references ('unreferenced': in
-- neither plan_kept_blobs nor plan_last_reference_blobs, as view unreferenced_blobs finds them
-- against every referenced blob), and blobs every (repository, manifest) pair referencing which
-- is deleted by the plan ('last reference deleted': plan_last_reference_blobs). young: younger
-- than the grace period (a missing time counts as young, unless the grace is off). The planner
-- turns these into delete_blob actions only where the source sweeps blobs separately (storage
-- and OCI layouts) and nothing restricts it; elsewhere they are an estimate of what the
-- registry will free.
-- Binds: blobs, plan_kept_blobs, plan_last_reference_blobs, plan_settings.
SELECT
    c.digest,
    CAST(c.size AS BIGINT) AS size,
    c.stored,
    c.reason,
    CASE
        WHEN s.grace_cutoff IS NOT NULL AND (c.modified_at IS NULL OR c.modified_at > s.grace_cutoff) THEN TRUE
        ELSE FALSE
    END AS young
FROM (
    SELECT b.digest, b.size, TRUE AS stored, b.modified_at, 'unreferenced' AS reason
    FROM blobs AS b
    LEFT JOIN plan_kept_blobs AS k ON k.digest = b.digest
    LEFT JOIN plan_last_reference_blobs AS l ON l.digest = b.digest
    WHERE b.stored AND k.digest IS NULL AND l.digest IS NULL
    UNION ALL
    SELECT l.digest, l.size, l.stored, l.modified_at, 'last reference deleted' AS reason
    FROM plan_last_reference_blobs AS l
) AS c
CROSS JOIN plan_settings AS s
