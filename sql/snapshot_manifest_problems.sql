-- Manifests a repository holds that could not be read or parsed: each becomes a crawl error
-- against that repository. `unknown_media_type` is not a problem: it is recorded as it is.
-- Binds: stage_revisions, stage_manifest_info.
SELECT r.repository, r.digest, m.status, m.message
FROM stage_revisions AS r
JOIN stage_manifest_info AS m ON m.digest = r.digest
WHERE m.status NOT IN ('ok', 'unknown_media_type')
ORDER BY r.repository NULLS LAST, r.digest NULLS LAST
