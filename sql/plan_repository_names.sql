-- Planner, every repository the snapshot names: in its repositories table, or holding a
-- manifest or a tag (a policy rule is chosen for each).
-- Binds: repositories, manifests, tags.
SELECT r.repository FROM repositories AS r
UNION
SELECT m.repository FROM manifests AS m
UNION
SELECT t.repository FROM tags AS t
ORDER BY repository NULLS LAST
