-- View `repository_usage`: one row per repository.
--   tags, manifests: counts; orphaned_manifests: manifests present and not reachable;
--   logical_bytes: sum over its manifests of their config and layer sizes (each distinct blob
--                  once per manifest);
--   exclusive_bytes: bytes of the blobs (manifest blobs included) that only manifests of this
--                    repository reference, registry-wide: freed if the repository were deleted;
--   shared_bytes: bytes of the blobs its manifests reference that another repository's
--                 manifests reference too (exclusive + shared = all it references);
--   orphaned_bytes: bytes of the blobs that only its orphaned manifests reference, registry-wide.
-- A manifest references its own manifest blob, its config, its layers and its index children.
-- Binds: repositories, tags, manifests, reachable, repository_references, blob_references.
WITH storage AS (
    SELECT
        rr.repository,
        SUM(b.size * rr.layer_manifests) AS logical_bytes,
        SUM(CASE WHEN b.repositories = 1 THEN b.size ELSE 0 END) AS exclusive_bytes,
        SUM(CASE WHEN b.repositories > 1 THEN b.size ELSE 0 END) AS shared_bytes,
        SUM(CASE WHEN b.repositories = 1 AND b.kept_manifests = 0 THEN b.size ELSE 0 END) AS orphaned_bytes
    FROM repository_references AS rr
    JOIN blob_references AS b ON b.digest = rr.digest
    GROUP BY rr.repository
),
tag_counts AS (
    SELECT t.repository, COUNT(*) AS tags
    FROM tags AS t
    GROUP BY t.repository
),
manifest_counts AS (
    SELECT
        m.repository,
        COUNT(*) AS manifests,
        SUM(CASE WHEN k.digest IS NULL THEN 1 ELSE 0 END) AS orphaned_manifests
    FROM manifests AS m
    LEFT JOIN reachable AS k ON k.repository = m.repository AND k.digest = m.digest
    GROUP BY m.repository
)
SELECT
    r.repository,
    CAST(COALESCE(t.tags, 0) AS BIGINT) AS tags,
    CAST(COALESCE(mc.manifests, 0) AS BIGINT) AS manifests,
    CAST(COALESCE(mc.orphaned_manifests, 0) AS BIGINT) AS orphaned_manifests,
    CAST(COALESCE(s.logical_bytes, 0) AS BIGINT) AS logical_bytes,
    CAST(COALESCE(s.exclusive_bytes, 0) AS BIGINT) AS exclusive_bytes,
    CAST(COALESCE(s.shared_bytes, 0) AS BIGINT) AS shared_bytes,
    CAST(COALESCE(s.orphaned_bytes, 0) AS BIGINT) AS orphaned_bytes
FROM repositories AS r
LEFT JOIN tag_counts AS t ON t.repository = r.repository
LEFT JOIN manifest_counts AS mc ON mc.repository = r.repository
LEFT JOIN storage AS s ON s.repository = r.repository
