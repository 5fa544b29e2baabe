-- Snapshot table `manifests`: each manifest present in a repository, with what parsing it found.
-- Binds: stage_revisions (a manifest in a repository, with the times and lock the source knows),
-- stage_manifest_info (what parsing found, one row per digest), stage_roots (manifests the
-- source keeps whatever their tags: an OCI layout's unnamed index.json entries).
-- Unsorted: regstat.crawl.assemble sorts the rows by the table's key (snapshot.SORT_KEYS), once.
SELECT
    r.repository,
    r.digest,
    m.media_type,
    m.artifact_type,
    m.config_media_type,
    m.size,
    m.subject_digest,
    COALESCE(m.status, 'missing') AS status,
    r.pushed_at,
    r.last_pulled_at,
    r.locked,
    CASE
        WHEN EXISTS (SELECT 1 FROM stage_roots AS o WHERE o.repository = r.repository AND o.digest = r.digest)
            THEN TRUE
        ELSE FALSE
    END AS root,
    r.updated_at
FROM stage_revisions AS r
LEFT JOIN stage_manifest_info AS m ON m.digest = r.digest
