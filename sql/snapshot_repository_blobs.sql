-- Snapshot table `repository_blobs`: blobs linked into each repository (`_layers`).
-- Binds: stage_layer_links.
SELECT repository, digest, linked_at
FROM stage_layer_links
ORDER BY repository, digest
