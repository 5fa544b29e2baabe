-- Snapshot table `blobs`: every stored blob, plus blobs that manifests name but the store lacks
-- (stored = FALSE, size from the largest descriptor that names them).
-- Binds: stage_stored_blobs, stage_manifest_descriptors, stage_manifest_info, stage_revisions.
-- Unsorted: regstat.crawl.assemble sorts the rows by the table's key (snapshot.SORT_KEYS), once.
SELECT digest, size, stored, modified_at
FROM (
    SELECT digest, size, TRUE AS stored, modified_at
    FROM stage_stored_blobs
    UNION ALL
    SELECT named.digest, MAX(named.size) AS size, FALSE AS stored, NULL AS modified_at
    FROM (
        SELECT d.digest, d.size
        FROM stage_manifest_descriptors AS d
        WHERE d.role IN ('config', 'layer', 'manifest')
        UNION ALL
        SELECT r.digest, m.size
        FROM stage_revisions AS r
        LEFT JOIN stage_manifest_info AS m ON m.digest = r.digest
    ) AS named
    WHERE NOT EXISTS (SELECT 1 FROM stage_stored_blobs AS s WHERE s.digest = named.digest)
    GROUP BY named.digest
) AS known
