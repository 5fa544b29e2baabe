-- Query `sharing_histogram` (regstat report): config and layer blobs grouped by how many
-- (repository, manifest) pairs reference them (view layer_sharing).
--   manifests: references; blobs: how many blobs have that many; bytes: their sizes summed.
-- Binds: layer_sharing.
SELECT
    s.manifests,
    CAST(COUNT(*) AS BIGINT) AS blobs,
    CAST(COALESCE(SUM(s.size), 0) AS BIGINT) AS bytes
FROM layer_sharing AS s
GROUP BY s.manifests
ORDER BY s.manifests NULLS LAST
