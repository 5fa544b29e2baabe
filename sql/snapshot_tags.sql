-- Snapshot table `tags`. Binds: stage_tag_links.
SELECT repository, tag, digest, updated_at
FROM stage_tag_links
ORDER BY repository, tag
