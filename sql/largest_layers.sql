-- View `largest_layers` (also regstat report's query): config and layer blobs, largest
-- first, ties by digest, with their references as in layer_sharing (manifests: (repository,
-- manifest) pairs, repositories: distinct, savings_bytes); the report keeps the first N rows.
-- Binds: layer_sharing.
SELECT s.digest, s.size, s.media_type, s.manifests, s.repositories, s.savings_bytes
FROM layer_sharing AS s
ORDER BY s.size DESC NULLS LAST, s.digest NULLS LAST
