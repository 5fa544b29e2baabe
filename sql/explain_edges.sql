-- Explain: for each target manifest, the manifests of its repository that reach it in one
-- step (manifest_edges) and are themselves reached: an index listing it (via 'index') or its
-- subject (via 'referrer'), with their depth in `reachable`. `regstat explain` follows these
-- back to a tag or a protection.
-- Binds: explain_targets (repository, digest), manifest_edges, reachable.
SELECT t.repository, t.digest, e.from_digest AS parent_digest, e.via, r.depth AS parent_depth
FROM explain_targets AS t
JOIN manifest_edges AS e ON e.repository = t.repository AND e.to_digest = t.digest
JOIN reachable AS r ON r.repository = e.repository AND r.digest = e.from_digest
ORDER BY r.depth NULLS LAST, e.from_digest NULLS LAST
