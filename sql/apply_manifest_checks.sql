-- apply-gc, before the manifest phase: whether each planned manifest deletion still holds in
-- a fresh crawl of the plan's repositories. verdict: ok; gone (the manifest is no longer in
-- its repository); tagged (a live tag the plan does not delete names it); referenced (a live
-- manifest the plan does not delete lists it as an index child or names it as its subject);
-- crawl_incomplete (the fresh crawl met errors in the repository).
-- Binds: apply_actions, manifests, tags, descriptors, apply_incomplete.
SELECT
    a.position,
    CASE
        WHEN EXISTS (SELECT 1 FROM apply_incomplete AS i WHERE i.repository = a.repository) THEN 'crawl_incomplete'
        WHEN NOT EXISTS (SELECT 1 FROM manifests AS m WHERE m.repository = a.repository AND m.digest = a.digest)
            THEN 'gone'
        WHEN EXISTS (
            SELECT 1 FROM tags AS t
            WHERE t.repository = a.repository AND t.digest = a.digest
            AND NOT EXISTS (
                SELECT 1 FROM apply_actions AS d
                WHERE d.action = 'delete_tag' AND d.repository = t.repository AND d.tag = t.tag AND d.digest = t.digest
            )
        ) THEN 'tagged'
        WHEN EXISTS (
            SELECT 1 FROM apply_live_edges AS e
            WHERE e.repository = a.repository AND e.to_digest = a.digest
            AND NOT EXISTS (
                SELECT 1 FROM apply_actions AS d
                WHERE d.action = 'delete_manifest' AND d.repository = e.repository AND d.digest = e.from_digest
            )
        ) THEN 'referenced'
        ELSE 'ok'
    END AS verdict
FROM apply_actions AS a
WHERE a.action = 'delete_manifest'
