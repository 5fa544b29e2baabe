-- Query `reclaimable_blobs` (regstat report, "reclaimable now"): the blobs no manifest that
-- `plan-gc --untagged` keeps references, with their age, as sql/plan_blobs.sql's 'last
-- reference deleted' rows: a blob is released when no (repository, manifest) pair referencing
-- it is kept. blob_references.kept_manifests counts the pairs the report's reachability keeps
-- (reachable_now); what the plan keeps (reachable) differs from it in a few manifests only
-- (protected orphans kept, tags on referrers that follow their subject), so only those
-- manifests' references are joined, each counting +1 (kept by the plan alone) or -1 (by the
-- report's reachability alone), rather than computing every blob's references again.
--   young: modified after the grace cutoff, or no time (a missing time counts as young).
-- Binds: blob_references (kept_manifests against reachable_now), reachable_now, reachable,
--        manifest_references, plan_settings.
SELECT
    b.digest,
    b.size,
    b.stored,
    CASE WHEN b.modified_at IS NULL OR b.modified_at > s.grace_cutoff THEN TRUE ELSE FALSE END AS young
FROM blob_references AS b
LEFT JOIN (
    SELECT r.digest, CAST(SUM(c.change) AS BIGINT) AS change
    FROM manifest_references AS r
    JOIN (
        SELECT k.repository, k.digest, 1 AS change
        FROM reachable AS k
        WHERE NOT EXISTS (
            SELECT 1 FROM reachable_now AS n WHERE n.repository = k.repository AND n.digest = k.digest
        )
        UNION ALL
        SELECT n.repository, n.digest, -1 AS change
        FROM reachable_now AS n
        WHERE NOT EXISTS (
            SELECT 1 FROM reachable AS k WHERE k.repository = n.repository AND k.digest = n.digest
        )
    ) AS c ON c.repository = r.repository AND c.digest = r.manifest_digest
    GROUP BY r.digest
) AS x ON x.digest = b.digest
CROSS JOIN plan_settings AS s
WHERE b.kept_manifests + COALESCE(x.change, 0) = 0
