-- View `layer_sharing`: one row per blob referenced as config or layer.
--   manifests: the (repository, manifest) pairs referencing it (a blob listed twice by one
--              manifest counts once); repositories: distinct repositories among them;
--   savings_bytes: size x (manifests - 1), what sharing saves (DESIGN.md "dedup savings").
--   size is the blob's (blobs.size: stored, else the largest descriptor size); media_type the
--   smallest media type any descriptor gives it.
-- Binds: descriptors, blobs.
SELECT
    p.digest,
    CAST(MAX(COALESCE(b.size, p.size)) AS BIGINT) AS size,
    MIN(p.media_type) AS media_type,
    CAST(COUNT(*) AS BIGINT) AS manifests,
    CAST(COUNT(DISTINCT p.repository) AS BIGINT) AS repositories,
    CAST(MAX(COALESCE(b.size, p.size)) AS BIGINT) * (CAST(COUNT(*) AS BIGINT) - 1) AS savings_bytes
FROM (
    SELECT d.digest, d.repository, d.manifest_digest, MAX(d.size) AS size, MIN(d.media_type) AS media_type
    FROM descriptors AS d
    WHERE d.role IN ('config', 'layer')
    GROUP BY d.digest, d.repository, d.manifest_digest
) AS p
LEFT JOIN blobs AS b ON b.digest = p.digest
GROUP BY p.digest
