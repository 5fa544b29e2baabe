-- Snapshot table `descriptors`: every descriptor of every manifest, once per repository holding it.
-- Schema 1 layers carry no size: take the stored blob's (stage_unsized_blobs).
-- The range's revisions come second: without row estimates DuckDB builds the join's hash table
-- on that side, which then holds one range, not every staged descriptor (at 1M manifests that
-- ran out of the assembly's 128MB).
-- Binds: stage_revisions, stage_manifest_descriptors, stage_unsized_blobs.
SELECT
    r.repository,
    d.manifest_digest,
    d.role,
    d.position,
    d.digest,
    d.media_type,
    COALESCE(d.size, b.size) AS size,
    d.platform,
    d.artifact_type
FROM stage_manifest_descriptors AS d
JOIN stage_revisions AS r ON d.manifest_digest = r.digest
LEFT JOIN stage_unsized_blobs AS b ON b.digest = d.digest AND d.size IS NULL
ORDER BY r.repository, d.manifest_digest, d.role, d.position
