-- Staging rows `manifest_descriptors` for the manifests an incremental crawl reused, as a fresh
-- parse stages them: one repository's descriptors of each (the same in each repository), and a
-- schema 1 layer's size NULL again (it has none; the snapshot shows the stored blob's size,
-- which assembling takes from this crawl's listing).
-- Binds: reused, previous_digests, previous_manifests, previous_descriptors.
WITH one AS (
    SELECT digest_id, MIN(repository) AS repository, MIN(media_type) AS media_type
    FROM previous_manifests
    WHERE status = 'ok'
    GROUP BY digest_id
)
SELECT
    m.digest AS manifest_digest,
    x.role,
    x.position,
    c.digest,
    x.media_type,
    CASE
        WHEN x.role = 'layer' AND o.media_type IN (
            'application/vnd.docker.distribution.manifest.v1+json',
            'application/vnd.docker.distribution.manifest.v1+prettyjws'
        ) THEN CAST(NULL AS BIGINT)
        ELSE x.size
    END AS size,
    x.platform,
    x.artifact_type,
    x.repeated
FROM (SELECT DISTINCT digest FROM reused) AS r
JOIN previous_digests AS m ON m.digest = r.digest
JOIN one AS o ON o.digest_id = m.digest_id
JOIN previous_descriptors AS x ON x.manifest_id = o.digest_id AND x.repository = o.repository
JOIN previous_digests AS c ON c.digest_id = x.digest_id
