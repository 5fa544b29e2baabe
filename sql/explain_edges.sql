-- Explain: for each target manifest, the manifests of its repository that reach it in one
-- step and are themselves reached: an index listing it (via 'index') or its subject (via
-- 'referrer'), with their depth in `reachable`. `regstat explain` follows these back to a tag
-- or a protection.
-- Binds: explain_targets (repository, digest), descriptors, manifests, reachable.
SELECT t.repository, t.digest, e.parent_digest, e.via, r.depth AS parent_depth
FROM explain_targets AS t
JOIN (
    SELECT d.repository, d.manifest_digest AS parent_digest, d.digest AS child_digest, 'index' AS via
    FROM descriptors AS d
    WHERE d.role = 'manifest'
    UNION ALL
    SELECT m.repository, m.subject_digest AS parent_digest, m.digest AS child_digest, 'referrer' AS via
    FROM manifests AS m
    WHERE m.subject_digest IS NOT NULL
) AS e ON e.repository = t.repository AND e.child_digest = t.digest
JOIN reachable AS r ON r.repository = e.repository AND r.digest = e.parent_digest
ORDER BY r.depth, e.parent_digest
