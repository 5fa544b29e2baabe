-- Merged table `blobs` of a sharded crawl (regstat.crawl.merge): one row per digest. A stored
-- blob is listed by exactly one shard (the shard of its blobs/ range): its row wins. Any other
-- shard names it only as a blob its descriptors name (stored = FALSE): a blob no shard saw
-- stored keeps the largest size its rows give, as one crawl takes the largest descriptor's.
-- Binds: shard_blobs (every shard's `blobs` rows, digests as text).
SELECT
    digest,
    COALESCE(MAX(CASE WHEN stored THEN size END), MAX(size)) AS size,
    MAX(CASE WHEN stored THEN 1 ELSE 0 END) = 1 AS stored,
    MAX(CASE WHEN stored THEN modified_at END) AS modified_at
FROM shard_blobs
GROUP BY digest
