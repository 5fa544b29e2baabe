-- Merged table `descriptors` of a sharded crawl (regstat.crawl.merge): every shard's rows (a
-- repository is in one shard). A schema 1 layer carries no size: its shard took the stored
-- blob's when the blob was in its own blobs/ range; the others come from the merged blobs.
-- Binds: shard_descriptors (every shard's `descriptors` rows), merged_blobs (sql/merge_blobs.sql).
SELECT
    d.repository,
    d.manifest_digest,
    d.role,
    d.position,
    d.digest,
    d.media_type,
    COALESCE(d.size, b.size) AS size,
    d.platform,
    d.artifact_type,
    d.repeated
FROM shard_descriptors AS d
LEFT JOIN merged_blobs AS b ON b.digest = d.digest AND b.stored AND d.size IS NULL
