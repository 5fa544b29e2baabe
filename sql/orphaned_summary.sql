-- Query `orphaned_summary` (regstat report): one row, what deleting every orphaned manifest
-- together would free (DESIGN.md "exclusive bytes" of the set of all orphaned manifests).
--   orphaned_manifests: (repository, manifest) pairs present and not reachable;
--   orphaned_blobs, orphaned_manifest_bytes: the blobs (manifest blobs included) that some
--       orphaned manifest references (own manifest blob, config, layers, index children) and
--       that no kept (reachable) manifest of any repository references. Blobs shared only among
--       orphans, even across repositories, count once. A blob no manifest references is
--       unreferenced already (view unreferenced_blobs) and never counted here.
-- Binds: manifests, manifest_references, blobs, reachable.
WITH refs AS (
    SELECT repository, manifest_digest, digest, size FROM manifest_references
),
kept_refs AS (
    SELECT r.digest
    FROM refs AS r
    WHERE EXISTS (
        SELECT 1 FROM reachable AS k WHERE k.repository = r.repository AND k.digest = r.manifest_digest
    )
),
freed AS (
    SELECT r.digest, CAST(MAX(COALESCE(b.size, r.size)) AS BIGINT) AS size
    FROM refs AS r
    LEFT JOIN blobs AS b ON b.digest = r.digest
    WHERE NOT EXISTS (SELECT 1 FROM kept_refs AS k WHERE k.digest = r.digest)
    GROUP BY r.digest
)
SELECT
    orphans.orphaned_manifests,
    released.orphaned_blobs,
    released.orphaned_manifest_bytes
FROM (
    SELECT CAST(COUNT(*) AS BIGINT) AS orphaned_manifests
    FROM manifests AS m
    WHERE NOT EXISTS (
        SELECT 1 FROM reachable AS k WHERE k.repository = m.repository AND k.digest = m.digest
    )
) AS orphans
CROSS JOIN (
    SELECT
        CAST(COUNT(*) AS BIGINT) AS orphaned_blobs,
        CAST(COALESCE(SUM(f.size), 0) AS BIGINT) AS orphaned_manifest_bytes
    FROM freed AS f
) AS released
