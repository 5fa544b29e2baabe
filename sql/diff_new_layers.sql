-- Table `diff_new_layers` (regstat diff): config and layer blobs of `new` (its view
-- layer_sharing) that `old` neither stored nor referenced: what the registry gained since,
-- with size, media type and how many repositories reference it now.
-- Binds: new.layer_sharing, old.blob_references, old.blobs.
SELECT n.digest, n.size, n.media_type, n.repositories
FROM new.layer_sharing AS n
WHERE NOT EXISTS (SELECT 1 FROM old.blob_references AS r WHERE r.digest = n.digest)
  AND NOT EXISTS (SELECT 1 FROM old.blobs AS b WHERE b.digest = n.digest)
