-- apply-gc: the planned actions a manifest deletion waits on, in the fresh crawl: the planned
-- deletion of a tag naming it, or of a manifest listing it or naming it as subject. If that
-- action does not happen (skipped, failed), the manifest stays too.
-- Binds: apply_actions, tags, apply_live_edges.
SELECT a.position, d.position AS blocker
FROM apply_actions AS a
JOIN tags AS t ON t.repository = a.repository AND t.digest = a.digest
JOIN apply_actions AS d ON d.action = 'delete_tag' AND d.repository = t.repository AND d.tag = t.tag
    AND d.digest = t.digest
WHERE a.action = 'delete_manifest'
UNION
SELECT a.position, d.position AS blocker
FROM apply_actions AS a
JOIN apply_live_edges AS e ON e.repository = a.repository AND e.to_digest = a.digest
JOIN apply_actions AS d ON d.action = 'delete_manifest' AND d.repository = e.repository AND d.digest = e.from_digest
WHERE a.action = 'delete_manifest'
