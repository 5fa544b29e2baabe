-- Query `orphaned_by_repository` (regstat report): one row per repository holding orphaned
-- manifests, splitting the blobs that deleting every orphan would free (orphaned_summary).
--   orphaned_manifests: its manifests present and not reachable;
--   orphaned_bytes: freed blobs that only its own orphans reference (repository_usage's
--       orphaned_bytes: freed even if only this repository's orphans were deleted);
--   shared_orphaned_bytes: freed blobs that its orphans and orphans of other repositories
--       reference (freed only when those go too). Summed over repositories, orphaned_bytes
--       plus each shared blob once is orphaned_summary's orphaned_manifest_bytes.
-- A freed blob has no kept reference, so every repository referencing it references it from
-- orphans only: blob_references.repositories tells whether it is shared.
-- Binds: manifests, reachable, repository_references, blob_references.
WITH released AS (
    SELECT
        rr.repository,
        SUM(CASE WHEN b.repositories = 1 THEN b.size ELSE 0 END) AS orphaned_bytes,
        SUM(CASE WHEN b.repositories > 1 THEN b.size ELSE 0 END) AS shared_orphaned_bytes
    FROM repository_references AS rr
    JOIN blob_references AS b ON b.digest = rr.digest AND b.kept_manifests = 0
    GROUP BY rr.repository
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
ORDER BY COALESCE(x.orphaned_bytes, 0) + COALESCE(x.shared_orphaned_bytes, 0) DESC NULLS LAST, o.repository NULLS LAST
