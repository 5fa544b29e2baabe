-- View `orphaned_manifests`: each manifest present in a repository and not reachable
-- (docs/design.md "Definitions"), with why and its exclusive bytes.
--   reason: 'child of orphaned index' (an index in the same repository lists it; that index
--           is then orphaned too), 'referrer of orphaned manifest' (its subject is present in
--           the repository, and orphaned), 'referrer of missing subject' (its subject is not
--           in the repository), else 'untagged'. The first that applies wins.
--   exclusive_bytes: bytes freed by deleting this manifest alone: the blobs it references
--           (its own manifest blob, config, layers, index children's manifest blobs) that no
--           other (repository, manifest) pair of the registry references. Deleting several
--           orphans together can free more (blobs shared only among them).
-- Binds: manifests, manifest_edges, reachable, manifest_exclusive_bytes.
SELECT
    m.repository,
    m.digest,
    m.media_type,
    m.artifact_type,
    CAST(m.size AS BIGINT) AS size,
    m.subject_digest,
    m.status,
    m.pushed_at,
    CASE
        WHEN parent.digest IS NOT NULL THEN 'child of orphaned index'
        WHEN subject.digest IS NOT NULL THEN 'referrer of orphaned manifest'
        WHEN m.subject_digest IS NOT NULL THEN 'referrer of missing subject'
        ELSE 'untagged'
    END AS reason,
    CAST(COALESCE(x.exclusive_bytes, 0) AS BIGINT) AS exclusive_bytes
FROM manifests AS m
LEFT JOIN (
    SELECT DISTINCT e.repository, e.to_digest AS digest
    FROM manifest_edges AS e
    WHERE e.via = 'index'
) AS parent ON parent.repository = m.repository AND parent.digest = m.digest
LEFT JOIN manifests AS subject
    ON subject.repository = m.repository AND subject.digest = m.subject_digest
LEFT JOIN manifest_exclusive_bytes AS x ON x.repository = m.repository AND x.manifest_digest = m.digest
WHERE NOT EXISTS (
    SELECT 1 FROM reachable AS r WHERE r.repository = m.repository AND r.digest = m.digest
)
