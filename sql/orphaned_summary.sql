-- Query `orphaned_summary` (regstat report): one row, what deleting every orphaned manifest
-- together would free (docs/design.md "exclusive bytes" of the set of all orphaned manifests).
--   orphaned_manifests: (repository, manifest) pairs present and not reachable;
--   orphaned_blobs, orphaned_manifest_bytes: the blobs (manifest blobs included) that some
--       orphaned manifest references (own manifest blob, config, layers, index children) and
--       that no kept (reachable) manifest of any repository references. Blobs shared only among
--       orphans, even across repositories, count once. A blob no manifest references is
--       unreferenced already (view unreferenced_blobs) and never counted here.
-- Binds: manifests, reachable, blob_references.
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
        CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS orphaned_manifest_bytes
    FROM blob_references AS b
    WHERE b.kept_manifests = 0
) AS released
