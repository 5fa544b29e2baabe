-- The manifests of an earlier snapshot an incremental crawl may reuse: those whose body parsed
-- `ok` (a manifest recorded as missing, unreadable or invalid is read again), with their size.
-- One row per digest, however many repositories hold it: a digest's facts are the same in each.
-- Binds: previous_digests, previous_manifests (the earlier snapshot's stored tables, with ids).
SELECT d.digest, MIN(m.size) AS size
FROM previous_manifests AS m
JOIN previous_digests AS d ON d.digest_id = m.digest_id
WHERE m.status = 'ok'
GROUP BY d.digest
