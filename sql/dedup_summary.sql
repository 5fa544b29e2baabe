-- View `dedup_summary`: one row.
--   physical_bytes: sum of the sizes of the distinct stored blobs (0 where the source cannot
--                   see stored blobs: an unknown, not a zero);
--   logical_bytes: sum over (repository, manifest) pairs of the sizes of their config and
--                  layers, each distinct blob once per pair (docs/design.md "logical bytes");
--   dedup_savings_bytes: sum over config and layer blobs of size x (references - 1).
-- Binds: blobs, layer_sharing.
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
        CAST(COALESCE(SUM(l.size * l.manifests), 0) AS BIGINT) AS logical_bytes,
        CAST(COALESCE(SUM(l.savings_bytes), 0) AS BIGINT) AS dedup_savings_bytes
    FROM layer_sharing AS l
) AS shared
