-- apply-gc, before the blob phase: whether each planned blob deletion still holds in a fresh
-- crawl of the whole source, taken after the manifest phase. verdict: ok; gone (not stored
-- now); blob_referenced (a live manifest is this blob, or lists it as config, layer or
-- anything else, in any repository; manifests this run deleted or, in a dry run, would
-- delete (apply_gone_manifests) do not count); blob_young (modified after the grace cutoff:
-- a push may be linking it right now).
-- Binds: apply_actions, blobs, manifests, descriptors, apply_gone_manifests, apply_settings.
SELECT
    a.position,
    CASE
        WHEN b.digest IS NULL OR NOT b.stored THEN 'gone'
        WHEN EXISTS (
            SELECT 1 FROM manifests AS m
            WHERE m.digest = a.digest
            AND NOT EXISTS (SELECT 1 FROM apply_gone_manifests AS g WHERE g.repository = m.repository AND g.digest = m.digest)
        ) THEN 'blob_referenced'
        WHEN EXISTS (
            SELECT 1 FROM descriptors AS e
            WHERE e.digest = a.digest
            AND NOT EXISTS (
                SELECT 1 FROM apply_gone_manifests AS g WHERE g.repository = e.repository AND g.digest = e.manifest_digest
            )
        ) THEN 'blob_referenced'
        WHEN s.grace_cutoff IS NOT NULL AND (b.modified_at IS NULL OR b.modified_at > s.grace_cutoff) THEN 'blob_young'
        ELSE 'ok'
    END AS verdict
FROM apply_actions AS a
CROSS JOIN apply_settings AS s
LEFT JOIN blobs AS b ON b.digest = a.digest
WHERE a.action = 'delete_blob'
