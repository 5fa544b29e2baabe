-- Table `diff_tags` (regstat diff): each tag that differs between the snapshots bound as
-- schemas `old` and `new`, with its manifest then and now.
--   change: 'added' (only in new), 'removed' (only in old) or 'moved' (another digest now);
--   old_digest, new_digest: the manifest it named then and names now (NULL where absent).
-- Binds: old.tags, new.tags.
SELECT
    COALESCE(n.repository, o.repository) AS repository,
    COALESCE(n.tag, o.tag) AS tag,
    CASE WHEN o.tag IS NULL THEN 'added' WHEN n.tag IS NULL THEN 'removed' ELSE 'moved' END AS change,
    o.digest AS old_digest,
    n.digest AS new_digest
FROM old.tags AS o
FULL OUTER JOIN new.tags AS n ON n.repository = o.repository AND n.tag = o.tag
WHERE o.tag IS NULL OR n.tag IS NULL OR o.digest <> n.digest
