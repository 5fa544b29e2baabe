-- Query `most_shared_layers` (regstat report): config and layer blobs that 2 or more
-- (repository, manifest) pairs reference, most referenced first, then by the bytes their
-- sharing saves (view layer_sharing); the caller keeps the first N rows.
-- Binds: layer_sharing.
SELECT s.digest, s.size, s.media_type, s.manifests, s.repositories, s.savings_bytes
FROM layer_sharing AS s
WHERE s.manifests >= 2
ORDER BY s.manifests DESC NULLS LAST, s.savings_bytes DESC NULLS LAST, s.digest NULLS LAST
