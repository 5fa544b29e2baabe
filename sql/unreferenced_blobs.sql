-- View `unreferenced_blobs`: stored blobs that no manifest of any repository references as
-- config, layer or index child, and that are not themselves a manifest present in any
-- repository (view blob_references). Meaningful only where the snapshot's capabilities say
-- unreferenced_blobs: true (storage layouts, OCI layouts); elsewhere nothing is
-- stored-and-seen, and it is empty.
-- An outer join rather than NOT EXISTS: with the filter on stored, DuckDB 2.0 plans NOT EXISTS
-- with the 5.5M blobs as the hash side, 4x slower at 10M descriptors (benchmarks/RESULTS.md).
-- Binds: blobs, blob_references.
SELECT
    b.digest,
    CAST(b.size AS BIGINT) AS size,
    b.modified_at
FROM blobs AS b
LEFT JOIN blob_references AS r ON r.digest = b.digest
WHERE b.stored AND r.digest IS NULL
