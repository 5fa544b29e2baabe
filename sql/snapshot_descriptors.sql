-- Snapshot table `descriptors`: every descriptor of every manifest, once per repository holding it.
-- Schema 1 layers carry no size: take the stored blob's (stage_unsized_blobs).
-- The range's revisions come second, and the unsized blobs last: regstat.crawl.assemble runs this
-- query with the joins in this order, so that those are the hash tables (one range, a few
-- blobs), never every staged descriptor.
-- Binds: stage_revisions, stage_manifest_descriptors, stage_unsized_blobs.
-- Unsorted: regstat.crawl.assemble sorts the rows by the table's key (snapshot.SORT_KEYS), once.
SELECT
    r.repository,
    d.manifest_digest,
    d.role,
    d.position,
    d.digest,
    d.media_type,
    COALESCE(d.size, b.size) AS size,
    d.platform,
    d.artifact_type,
    d.repeated
FROM stage_manifest_descriptors AS d
JOIN stage_revisions AS r ON d.manifest_digest = r.digest
LEFT JOIN stage_unsized_blobs AS b ON b.digest = d.digest AND d.size IS NULL
