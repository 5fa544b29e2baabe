-- Query `blob_totals` (regstat report): one row of registry-wide blob and manifest counts.
--   stored_blobs, stored_bytes: blobs the source saw stored (physical bytes; 0 where the source
--       cannot see stored blobs: an unknown, not a zero);
--   known_blobs, known_bytes: every distinct blob the snapshot knows, sized from storage or
--       else from descriptors (physical bytes estimated where storage is invisible);
--   referenced_stored_bytes, referenced_bytes: the blobs some manifest references (manifest
--       blobs included, view blob_references), stored ones only or all: the physical bytes of a
--       partial snapshot, whose store holds the blobs of repositories it did not crawl too;
--   unreferenced_blobs, unreferenced_blob_bytes: the view unreferenced_blobs;
--   unparsed_manifests: manifests whose status is not 'ok' (their references are unknown).
-- Binds: blobs, manifests, blob_references, unreferenced_blobs.
SELECT
    known.stored_blobs,
    known.stored_bytes,
    known.known_blobs,
    known.known_bytes,
    referenced.referenced_stored_bytes,
    referenced.referenced_bytes,
    garbage.unreferenced_blobs,
    garbage.unreferenced_blob_bytes,
    problems.unparsed_manifests
FROM (
    SELECT
        CAST(SUM(CASE WHEN b.stored THEN 1 ELSE 0 END) AS BIGINT) AS stored_blobs,
        CAST(COALESCE(SUM(CASE WHEN b.stored THEN b.size ELSE 0 END), 0) AS BIGINT) AS stored_bytes,
        CAST(COUNT(*) AS BIGINT) AS known_blobs,
        CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS known_bytes
    FROM blobs AS b
) AS known
CROSS JOIN (
    SELECT
        CAST(COALESCE(SUM(CASE WHEN r.stored THEN r.size ELSE 0 END), 0) AS BIGINT) AS referenced_stored_bytes,
        CAST(COALESCE(SUM(r.size), 0) AS BIGINT) AS referenced_bytes
    FROM blob_references AS r
) AS referenced
CROSS JOIN (
    SELECT
        CAST(COUNT(*) AS BIGINT) AS unreferenced_blobs,
        CAST(COALESCE(SUM(u.size), 0) AS BIGINT) AS unreferenced_blob_bytes
    FROM unreferenced_blobs AS u
) AS garbage
CROSS JOIN (
    SELECT CAST(SUM(CASE WHEN m.status <> 'ok' THEN 1 ELSE 0 END) AS BIGINT) AS unparsed_manifests
    FROM manifests AS m
) AS problems
