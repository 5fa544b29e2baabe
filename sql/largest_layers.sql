-- Query `largest_layers` (regstat report): config and layer blobs, largest first (view
-- layer_sharing); the caller keeps the first N rows.
-- Binds: layer_sharing.
SELECT s.digest, s.size, s.media_type, s.manifests, s.repositories, s.savings_bytes
FROM layer_sharing AS s
ORDER BY s.size DESC, s.digest
