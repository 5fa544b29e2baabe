-- regstat diff's rows per repository: each repository of `old` or `new` where anything
-- changed, with its repository_usage figures then (old_*) and now (new_*; NULL where the
-- repository is absent) and its counts of changes from diff_tags, diff_manifests and
-- diff_new_orphans. referenced bytes are exclusive + shared: all its manifests reference.
-- Largest change of referenced bytes first, then by name.
-- Binds: old.repository_usage, new.repository_usage, diff_tags, diff_manifests, diff_new_orphans.
WITH usage AS (
    SELECT
        COALESCE(n.repository, o.repository) AS repository,
        CASE WHEN o.repository IS NULL THEN 'added' WHEN n.repository IS NULL THEN 'removed' ELSE 'changed' END
            AS status,
        o.tags AS old_tags, n.tags AS new_tags,
        o.manifests AS old_manifests, n.manifests AS new_manifests,
        o.orphaned_manifests AS old_orphaned_manifests, n.orphaned_manifests AS new_orphaned_manifests,
        o.logical_bytes AS old_logical_bytes, n.logical_bytes AS new_logical_bytes,
        o.exclusive_bytes + o.shared_bytes AS old_referenced_bytes,
        n.exclusive_bytes + n.shared_bytes AS new_referenced_bytes,
        o.exclusive_bytes AS old_exclusive_bytes, n.exclusive_bytes AS new_exclusive_bytes,
        o.orphaned_bytes AS old_orphaned_bytes, n.orphaned_bytes AS new_orphaned_bytes
    FROM old.repository_usage AS o
    FULL OUTER JOIN new.repository_usage AS n ON n.repository = o.repository
),
tag_changes AS (
    SELECT
        repository,
        SUM(CASE WHEN change = 'added' THEN 1 ELSE 0 END) AS tags_added,
        SUM(CASE WHEN change = 'removed' THEN 1 ELSE 0 END) AS tags_removed,
        SUM(CASE WHEN change = 'moved' THEN 1 ELSE 0 END) AS tags_moved
    FROM diff_tags
    GROUP BY repository
),
manifest_changes AS (
    SELECT
        repository,
        SUM(CASE WHEN change = 'added' THEN 1 ELSE 0 END) AS manifests_added,
        SUM(CASE WHEN change = 'removed' THEN 1 ELSE 0 END) AS manifests_removed
    FROM diff_manifests
    GROUP BY repository
),
orphan_changes AS (
    SELECT repository, COUNT(*) AS new_orphans FROM diff_new_orphans GROUP BY repository
),
rows_ AS (
    SELECT
        u.*,
        CAST(COALESCE(t.tags_added, 0) AS BIGINT) AS tags_added,
        CAST(COALESCE(t.tags_removed, 0) AS BIGINT) AS tags_removed,
        CAST(COALESCE(t.tags_moved, 0) AS BIGINT) AS tags_moved,
        CAST(COALESCE(m.manifests_added, 0) AS BIGINT) AS manifests_added,
        CAST(COALESCE(m.manifests_removed, 0) AS BIGINT) AS manifests_removed,
        CAST(COALESCE(x.new_orphans, 0) AS BIGINT) AS new_orphans,
        CAST(COALESCE(u.new_referenced_bytes, 0) - COALESCE(u.old_referenced_bytes, 0) AS BIGINT)
            AS referenced_bytes_change
    FROM usage AS u
    LEFT JOIN tag_changes AS t ON t.repository = u.repository
    LEFT JOIN manifest_changes AS m ON m.repository = u.repository
    LEFT JOIN orphan_changes AS x ON x.repository = u.repository
)
SELECT *
FROM rows_
WHERE status <> 'changed'
   OR tags_added + tags_removed + tags_moved + manifests_added + manifests_removed + new_orphans > 0
   OR old_logical_bytes <> new_logical_bytes
   OR old_referenced_bytes <> new_referenced_bytes
   OR old_exclusive_bytes <> new_exclusive_bytes
   OR old_orphaned_bytes <> new_orphaned_bytes
   OR old_orphaned_manifests <> new_orphaned_manifests
ORDER BY ABS(referenced_bytes_change) DESC NULLS LAST, repository NULLS LAST
