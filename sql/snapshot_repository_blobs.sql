-- Snapshot table `repository_blobs`: blobs linked into each repository (`_layers`).
-- Binds: stage_layer_links.
-- Unsorted: regstat.crawl.assemble sorts the rows by the table's key (snapshot.SORT_KEYS), once.
SELECT repository, digest, linked_at
FROM stage_layer_links
