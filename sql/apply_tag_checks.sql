-- apply-gc, before the tag phase: whether each planned tag deletion still holds in a fresh
-- crawl of the plan's repositories. verdict: ok (the tag still names the planned digest),
-- gone (no such tag now), tag_moved (it names another digest), crawl_incomplete (the fresh
-- crawl met errors in the repository: nothing there is decided on what it could not read).
-- Binds: apply_actions, tags, apply_incomplete.
SELECT
    a.position,
    CASE
        WHEN EXISTS (SELECT 1 FROM apply_incomplete AS i WHERE i.repository = a.repository) THEN 'crawl_incomplete'
        WHEN t.tag IS NULL THEN 'gone'
        WHEN t.digest <> a.digest THEN 'tag_moved'
        ELSE 'ok'
    END AS verdict,
    t.digest AS live_digest
FROM apply_actions AS a
LEFT JOIN tags AS t ON t.repository = a.repository AND t.tag = a.tag
WHERE a.action = 'delete_tag'
