-- Explain: the digests of the snapshot that start with a short digest, and what each is, so
-- that `regstat explain` takes the one it names or lists them when it names several.
--   repository: a repository holding the digest as a manifest, one row each (NULL: none does);
--   stored: blobs.stored (NULL: the blobs table does not hold it: only a reference names it).
-- Parameters: 1 a LIKE pattern, 'ALGORITHM:HEX%' (hex digits hold neither % nor _).
SELECT d.digest, m.repository, b.stored
FROM digests AS d
LEFT JOIN manifests AS m ON m.digest = d.digest
LEFT JOIN blobs AS b ON b.digest = d.digest
WHERE d.digest LIKE ?
ORDER BY d.digest NULLS LAST, m.repository NULLS LAST
