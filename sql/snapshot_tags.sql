-- Snapshot table `tags`. Binds: stage_tag_links.
-- Unsorted: regstat.crawl.assemble sorts the rows by the table's key (snapshot.SORT_KEYS), once.
SELECT repository, tag, digest, updated_at, locked
FROM stage_tag_links
