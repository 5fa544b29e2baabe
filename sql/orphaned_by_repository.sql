-- Query `orphaned_by_repository` (regstat report): one row per repository holding orphaned
-- manifests, splitting the blobs that deleting every orphan would free (orphaned_summary).
--   orphaned_manifests: its manifests present and not reachable;
--   orphaned_bytes: freed blobs that only its own orphans reference (repository_usage's
--       orphaned_bytes: freed even if only this repository's orphans were deleted);
--   shared_orphaned_bytes: freed blobs that its orphans and orphans of other repositories
--       reference (freed only when those go too). Summed over repositories, orphaned_bytes
--       plus each shared blob once is orphaned_summary's orphaned_manifest_bytes.
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
freed_by_repository AS (
    SELECT r.repository, r.digest, CAST(MAX(COALESCE(b.size, r.size)) AS BIGINT) AS size
    FROM refs AS r
    LEFT JOIN blobs AS b ON b.digest = r.digest
    WHERE NOT EXISTS (SELECT 1 FROM kept_refs AS k WHERE k.digest = r.digest)
    GROUP BY r.repository, r.digest
),
freed_repositories AS (
    SELECT f.digest, COUNT(*) AS repositories
    FROM freed_by_repository AS f
    GROUP BY f.digest
),
released AS (
    SELECT
        f.repository,
        SUM(CASE WHEN fr.repositories = 1 THEN f.size ELSE 0 END) AS orphaned_bytes,
        SUM(CASE WHEN fr.repositories > 1 THEN f.size ELSE 0 END) AS shared_orphaned_bytes
    FROM freed_by_repository AS f
    JOIN freed_repositories AS fr ON fr.digest = f.digest
    GROUP BY f.repository
),
orphans AS (
    SELECT m.repository, COUNT(*) AS orphaned_manifests
    FROM manifests AS m
    WHERE NOT EXISTS (
        SELECT 1 FROM reachable AS k WHERE k.repository = m.repository AND k.digest = m.digest
    )
    GROUP BY m.repository
)
SELECT
    o.repository,
    CAST(o.orphaned_manifests AS BIGINT) AS orphaned_manifests,
    CAST(COALESCE(x.orphaned_bytes, 0) AS BIGINT) AS orphaned_bytes,
    CAST(COALESCE(x.shared_orphaned_bytes, 0) AS BIGINT) AS shared_orphaned_bytes
FROM orphans AS o
LEFT JOIN released AS x ON x.repository = o.repository
ORDER BY COALESCE(x.orphaned_bytes, 0) + COALESCE(x.shared_orphaned_bytes, 0) DESC, o.repository
