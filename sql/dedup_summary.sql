-- View `dedup_summary`: one row.
--   physical_bytes: sum of the sizes of the distinct stored blobs (0 where the source cannot
--                   see stored blobs: an unknown, not a zero);
--   logical_bytes: sum over (repository, manifest) pairs of the sizes of their config and
--                  layers, each distinct blob once per pair (DESIGN.md "logical bytes");
--   dedup_savings_bytes: sum over config and layer blobs of size x (references - 1).
-- Binds: blobs, descriptors.
SELECT
    physical.physical_bytes,
    shared.logical_bytes,
    shared.dedup_savings_bytes
FROM (
    SELECT CAST(COALESCE(SUM(s.size), 0) AS BIGINT) AS physical_bytes
    FROM blobs AS s
    WHERE s.stored
) AS physical
CROSS JOIN (
    SELECT
        CAST(COALESCE(SUM(per_blob.size * per_blob.refs), 0) AS BIGINT) AS logical_bytes,
        CAST(COALESCE(SUM(per_blob.size * (per_blob.refs - 1)), 0) AS BIGINT) AS dedup_savings_bytes
    FROM (
        SELECT
            p.digest,
            CAST(MAX(COALESCE(b.size, p.size)) AS BIGINT) AS size,
            CAST(COUNT(*) AS BIGINT) AS refs
        FROM (
            SELECT d.digest, d.repository, d.manifest_digest, MAX(d.size) AS size
            FROM descriptors AS d
            WHERE d.role IN ('config', 'layer')
            GROUP BY d.digest, d.repository, d.manifest_digest
        ) AS p
        LEFT JOIN blobs AS b ON b.digest = p.digest
        GROUP BY p.digest
    ) AS per_blob
) AS shared
