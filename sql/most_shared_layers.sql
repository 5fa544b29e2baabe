-- Query `most_shared_layers` (regstat report): config and layer blobs, most referenced first,
-- then by the bytes their sharing saves (view layer_sharing); the caller keeps the first N rows.
-- Binds: layer_sharing.
SELECT s.digest, s.size, s.media_type, s.manifests, s.repositories, s.savings_bytes
FROM layer_sharing AS s
ORDER BY s.manifests DESC, s.savings_bytes DESC, s.digest
