-- View `unreferenced_blobs`: stored blobs that no manifest of any repository references as
-- config, layer or index child, and that are not themselves a manifest present in any
-- repository. Meaningful only where the snapshot's capabilities say unreferenced_blobs: true
-- (storage layouts, OCI layouts); elsewhere nothing is stored-and-seen, and it is empty.
-- Binds: blobs, manifests, descriptors.
SELECT
    b.digest,
    CAST(b.size AS BIGINT) AS size,
    b.modified_at
FROM blobs AS b
WHERE b.stored
AND NOT EXISTS (
    SELECT 1
    FROM descriptors AS d
    WHERE d.digest = b.digest AND d.role IN ('config', 'layer', 'manifest')
)
AND NOT EXISTS (
    SELECT 1 FROM manifests AS m WHERE m.digest = b.digest
)
