-- Query `reclaimable_blobs` (regstat report, "reclaimable now"): the blobs whose every
-- reference is a manifest that `plan-gc --untagged` deletes (reclaim_deleted), with their
-- age, as sql/plan_blobs.sql's 'last reference deleted' rows: a blob is released when the
-- (repository, manifest) pairs referencing it that are deleted are all of them
-- (blob_references.manifests counts every pair). Joining the few deleted manifests'
-- references, rather than computing every blob's references again, keeps this one pass.
--   young: modified after the grace cutoff, or no time (a missing time counts as young).
-- Binds: manifest_references, reclaim_deleted (repository, digest), blob_references,
--        plan_settings.
SELECT
    b.digest,
    b.size,
    b.stored,
    CASE WHEN b.modified_at IS NULL OR b.modified_at > s.grace_cutoff THEN TRUE ELSE FALSE END AS young
FROM blob_references AS b
JOIN (
    SELECT r.digest, CAST(COUNT(*) AS BIGINT) AS deleted_references
    FROM manifest_references AS r
    JOIN reclaim_deleted AS d ON d.repository = r.repository AND d.digest = r.manifest_digest
    GROUP BY r.digest
) AS x ON x.digest = b.digest
CROSS JOIN plan_settings AS s
WHERE x.deleted_references = b.manifests
