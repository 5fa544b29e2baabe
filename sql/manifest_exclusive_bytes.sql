-- View `manifest_exclusive_bytes`: per (repository, manifest) pair, the bytes deleting it alone
-- would free: the blobs it references (its own manifest blob, config, layers, index
-- children's manifest blobs) that no other pair of the registry references. A blob with one
-- reference has its repository_references row name the manifest. Pairs that would free
-- nothing have no row.
-- Binds: repository_references, blob_references.
SELECT r.repository, r.manifest_digest, SUM(b.size) AS exclusive_bytes
FROM repository_references AS r
JOIN blob_references AS b ON b.digest = r.digest AND b.manifests = 1
WHERE r.manifests = 1  -- implied by b.manifests = 1: fewer rows to probe
GROUP BY r.repository, r.manifest_digest
