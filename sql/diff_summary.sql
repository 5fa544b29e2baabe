-- regstat diff's counts of changes, one row, from its tables diff_tags, diff_manifests,
-- diff_new_orphans and diff_new_layers and the repositories of `old` and `new`.
-- Binds: diff_tags, diff_manifests, diff_new_orphans, diff_new_layers, old.repositories,
--        new.repositories.
SELECT
    (SELECT COUNT(*) FROM diff_tags WHERE change = 'added') AS tags_added,
    (SELECT COUNT(*) FROM diff_tags WHERE change = 'removed') AS tags_removed,
    (SELECT COUNT(*) FROM diff_tags WHERE change = 'moved') AS tags_moved,
    (SELECT COUNT(*) FROM diff_manifests WHERE change = 'added') AS manifests_added,
    (SELECT COUNT(*) FROM diff_manifests WHERE change = 'removed') AS manifests_removed,
    (SELECT COUNT(*) FROM diff_new_orphans) AS new_orphans,
    (SELECT COUNT(*) FROM diff_new_layers) AS new_layers,
    (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM diff_new_layers) AS new_layer_bytes,
    (SELECT COUNT(*) FROM new.repositories AS n
     WHERE NOT EXISTS (SELECT 1 FROM old.repositories AS o WHERE o.repository = n.repository)) AS repositories_added,
    (SELECT COUNT(*) FROM old.repositories AS o
     WHERE NOT EXISTS (SELECT 1 FROM new.repositories AS n WHERE n.repository = o.repository)) AS repositories_removed
