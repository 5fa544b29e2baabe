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
-- orphaned_bytes joins on the per-blob repository count rather than an anti-join on "another
-- repository", which compares every reference of a widely shared layer with every other.
-- Binds: repositories, tags, manifests, descriptors, manifest_references, blobs, reachable.
WITH refs AS (
    SELECT repository, manifest_digest, digest, size FROM manifest_references
),
repo_blobs AS (
    SELECT r.repository, r.digest, CAST(MAX(COALESCE(b.size, r.size)) AS BIGINT) AS size
    FROM refs AS r
    LEFT JOIN blobs AS b ON b.digest = r.digest
    GROUP BY r.repository, r.digest
),
kept_blobs AS (
    SELECT DISTINCT r.digest
    FROM refs AS r
    JOIN reachable AS k ON k.repository = r.repository AND k.digest = r.manifest_digest
),
blob_repositories AS (
    SELECT r.digest, COUNT(DISTINCT r.repository) AS repositories
    FROM refs AS r
    GROUP BY r.digest
),
storage AS (
    SELECT
        rb.repository,
        SUM(CASE WHEN br.repositories = 1 THEN rb.size ELSE 0 END) AS exclusive_bytes,
        SUM(CASE WHEN br.repositories > 1 THEN rb.size ELSE 0 END) AS shared_bytes
    FROM repo_blobs AS rb
    JOIN blob_repositories AS br ON br.digest = rb.digest
    GROUP BY rb.repository
),
orphaned AS (
    SELECT rb.repository, SUM(rb.size) AS orphaned_bytes
    FROM repo_blobs AS rb
    JOIN blob_repositories AS br ON br.digest = rb.digest AND br.repositories = 1
    WHERE NOT EXISTS (SELECT 1 FROM kept_blobs AS k WHERE k.digest = rb.digest)
    GROUP BY rb.repository
),
logical AS (
    SELECT p.repository, SUM(COALESCE(b.size, p.size)) AS logical_bytes
    FROM (
        SELECT d.repository, d.manifest_digest, d.digest, MAX(d.size) AS size
        FROM descriptors AS d
        WHERE d.role IN ('config', 'layer')
        GROUP BY d.repository, d.manifest_digest, d.digest
    ) AS p
    LEFT JOIN blobs AS b ON b.digest = p.digest
    GROUP BY p.repository
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
    CAST(COALESCE(l.logical_bytes, 0) AS BIGINT) AS logical_bytes,
    CAST(COALESCE(s.exclusive_bytes, 0) AS BIGINT) AS exclusive_bytes,
    CAST(COALESCE(s.shared_bytes, 0) AS BIGINT) AS shared_bytes,
    CAST(COALESCE(o.orphaned_bytes, 0) AS BIGINT) AS orphaned_bytes
FROM repositories AS r
LEFT JOIN tag_counts AS t ON t.repository = r.repository
LEFT JOIN manifest_counts AS mc ON mc.repository = r.repository
LEFT JOIN logical AS l ON l.repository = r.repository
LEFT JOIN storage AS s ON s.repository = r.repository
LEFT JOIN orphaned AS o ON o.repository = r.repository
