-- Table `diff_new_orphans` (regstat diff): the manifests orphaned in `new` (its view
-- orphaned_manifests) that were not orphaned in `old`: untagged since, or new and never
-- tagged. reason and exclusive_bytes are new's (orphaned_manifests says what they mean);
-- was_present: whether the repository held the manifest in `old` (then reachable).
-- Binds: old.manifests, old.reachable, new.orphaned_manifests.
SELECT
    n.repository,
    n.digest,
    n.media_type,
    n.reason,
    n.exclusive_bytes,
    CASE WHEN EXISTS (
        SELECT 1 FROM old.manifests AS m WHERE m.repository = n.repository AND m.digest = n.digest
    ) THEN TRUE ELSE FALSE END AS was_present
FROM new.orphaned_manifests AS n
WHERE NOT EXISTS (  -- orphaned in old: present there, and not reachable (as old.orphaned_manifests)
    SELECT 1 FROM old.manifests AS o
    WHERE o.repository = n.repository AND o.digest = n.digest
      AND NOT EXISTS (SELECT 1 FROM old.reachable AS r WHERE r.repository = o.repository AND r.digest = o.digest)
)
