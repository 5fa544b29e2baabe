-- View `layer_sharing`: one row per blob referenced as config or layer.
--   manifests: the (repository, manifest) pairs referencing it (a blob listed twice by one
--              manifest counts once); repositories: distinct repositories among them;
--   savings_bytes: size x (manifests - 1), what sharing saves (docs/design.md "dedup savings").
--   size is the blob's (blobs.size: stored, else the largest descriptor size); media_type the
--   smallest media type any config or layer descriptor gives it.
-- Binds: blob_references.
SELECT
    b.digest,
    b.size,
    b.media_type,
    b.layer_manifests AS manifests,
    b.layer_repositories AS repositories,
    b.size * (b.layer_manifests - 1) AS savings_bytes
FROM blob_references AS b
WHERE b.layer_manifests > 0
