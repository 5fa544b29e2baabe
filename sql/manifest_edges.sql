-- View `manifest_edges`: the steps reachability takes within a repository, one row each:
-- an index to a child it lists (via 'index'), a subject to a manifest whose subject it is
-- (via 'referrer'). regstat materialises it once per connection before computing
-- reachability, so each step joins this small table instead of the descriptors.
-- Binds: descriptors, manifests.
SELECT d.repository, d.manifest_digest AS from_digest, d.digest AS to_digest, 'index' AS via
FROM descriptors AS d
WHERE d.role = 'manifest'
UNION ALL
SELECT m.repository, m.subject_digest AS from_digest, m.digest AS to_digest, 'referrer' AS via
FROM manifests AS m
WHERE m.subject_digest IS NOT NULL
