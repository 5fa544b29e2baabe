-- Staging rows `manifest_info` for the manifests an incremental crawl reused: what parsing their
-- bodies gave the earlier snapshot, which is what parsing them again would give (the columns
-- and order of regstat.crawl.assemble.STAGING_SCHEMAS["manifest_info"]).
-- Binds: reused (digest: the staged reused_manifests), previous_digests, previous_manifests.
WITH one AS (
    SELECT digest_id, MIN(repository) AS repository
    FROM previous_manifests
    WHERE status = 'ok'
    GROUP BY digest_id
)
SELECT
    d.digest,
    m.media_type,
    m.artifact_type,
    m.config_media_type,
    m.size,
    s.digest AS subject_digest,
    m.status,
    CAST(NULL AS VARCHAR) AS message
FROM (SELECT DISTINCT digest FROM reused) AS r
JOIN previous_digests AS d ON d.digest = r.digest
JOIN one AS o ON o.digest_id = d.digest_id
JOIN previous_manifests AS m ON m.digest_id = o.digest_id AND m.repository = o.repository
LEFT JOIN previous_digests AS s ON s.digest_id = m.subject_id
