-- Explain: the tags of one repository and the digests they point to, for `regstat explain
-- REPOSITORY:TAG`; one row with tag NULL when the repository has no tags, no row when the
-- snapshot has no such repository (so the message can say which).
-- Parameters: 1 the repository.
SELECT t.tag, t.digest
FROM repositories AS r
LEFT JOIN tags AS t ON t.repository = r.repository
WHERE r.repository = ?
ORDER BY t.tag NULLS LAST
