-- Reachability, the seed (depth 0): every tagged manifest that its repository holds.
-- A tag naming a manifest the repository lacks (a dangling tag, a crawl error) reaches nothing.
-- Binds: tags, manifests.
SELECT DISTINCT
    t.repository,
    t.digest,
    CAST(0 AS INTEGER) AS depth,
    'tag' AS via
FROM tags AS t
WHERE EXISTS (
    SELECT 1 FROM manifests AS m WHERE m.repository = t.repository AND m.digest = t.digest
)
