-- Stored sizes of the blobs that some descriptor names without a size (schema 1 layers carry
-- none): the only stored blobs `snapshot_descriptors` joins, so its join stays small.
-- Binds: stage_stored_blobs, stage_manifest_descriptors.
SELECT b.digest, b.size
FROM stage_stored_blobs AS b
WHERE EXISTS (
    SELECT 1 FROM stage_manifest_descriptors AS d WHERE d.digest = b.digest AND d.size IS NULL
)
