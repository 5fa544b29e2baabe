-- Index children of the earlier snapshot's reusable manifests, in their order, with their platform:
-- the registry API walks them as it would after parsing the index; ECR and ACR check them
-- against the repository's listing (missing_child). Descriptors repeat per repository holding the
-- manifest; one repository's rows are taken (they are the same in each).
-- Binds: previous_digests, previous_manifests, previous_descriptors.
WITH one AS (
    SELECT digest_id, MIN(repository) AS repository
    FROM previous_manifests
    WHERE status = 'ok'
    GROUP BY digest_id
)
SELECT m.digest, x.position, c.digest AS child, x.platform
FROM previous_descriptors AS x
JOIN one AS o ON o.digest_id = x.manifest_id AND o.repository = x.repository
JOIN previous_digests AS m ON m.digest_id = x.manifest_id
JOIN previous_digests AS c ON c.digest_id = x.digest_id
WHERE x.role = 'manifest'
ORDER BY m.digest NULLS LAST, x.position NULLS LAST
