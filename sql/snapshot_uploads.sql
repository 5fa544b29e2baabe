-- Snapshot table `uploads`: uploads in progress. Binds: stage_uploads.
-- Unsorted: regstat.crawl.assemble sorts the rows by the table's key (snapshot.SORT_KEYS), once.
SELECT repository, uuid, started_at, size, modified_at
FROM stage_uploads
