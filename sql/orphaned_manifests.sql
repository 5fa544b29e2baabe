-- View `orphaned_manifests`: each manifest present in a repository and not reachable
-- (docs/design.md "Definitions"), with why and its exclusive bytes.
--   reason: why it is orphaned, as the view orphan_reasons words it: 'child of an orphaned
--           index', 'referrer of an orphaned manifest', 'referrer of a missing subject' or
--           'untagged'.
--   exclusive_bytes: bytes freed by deleting this manifest alone: the blobs it references
--           (its own manifest blob, config, layers, index children's manifest blobs) that no
--           other (repository, manifest) pair of the registry references. Deleting several
--           orphans together can free more (blobs shared only among them).
-- Binds: orphan_reasons, reachable, manifest_exclusive_bytes.
SELECT
    o.repository,
    o.digest,
    o.media_type,
    o.artifact_type,
    CAST(o.size AS BIGINT) AS size,
    o.subject_digest,
    o.status,
    o.pushed_at,
    o.reason,
    CAST(COALESCE(x.exclusive_bytes, 0) AS BIGINT) AS exclusive_bytes
FROM orphan_reasons AS o
LEFT JOIN manifest_exclusive_bytes AS x ON x.repository = o.repository AND x.manifest_digest = o.digest
WHERE NOT EXISTS (
    SELECT 1 FROM reachable AS r WHERE r.repository = o.repository AND r.digest = o.digest
)
