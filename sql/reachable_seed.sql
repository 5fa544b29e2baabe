-- Reachability, the seed (depth 0): every tagged manifest that its repository holds (via
-- 'tag'), and every root (via 'root': manifests.root, an OCI layout's unnamed index.json entry,
-- kept whatever the tags). A tag naming a manifest the repository lacks (a dangling tag, a
-- crawl error) reaches nothing. One row per (repository, digest); a tagged root is 'tag'.
-- Binds: tags, manifests.
SELECT s.repository, s.digest, CAST(0 AS INTEGER) AS depth, MAX(s.via) AS via
FROM (
    SELECT t.repository, t.digest, 'tag' AS via
    FROM tags AS t
    WHERE EXISTS (
        SELECT 1 FROM manifests AS m WHERE m.repository = t.repository AND m.digest = t.digest
    )
    UNION ALL
    SELECT m.repository, m.digest, 'root' AS via
    FROM manifests AS m
    WHERE m.root
) AS s
GROUP BY s.repository, s.digest
