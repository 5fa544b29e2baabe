-- Planner, order: pairs of deleted manifests of one repository where the first must be
-- deleted before the second, so that no step of applying the plan leaves a dangling
-- reference: an index before its children, a referrer before its subject.
-- Binds: descriptors, manifests, plan_deleted_manifests (repository, digest, ...).
SELECT e.repository, e.first_digest, e.then_digest
FROM (
    SELECT d.repository, d.manifest_digest AS first_digest, d.digest AS then_digest
    FROM descriptors AS d
    WHERE d.role = 'manifest'
    UNION
    SELECT m.repository, m.digest AS first_digest, m.subject_digest AS then_digest
    FROM manifests AS m
    WHERE m.subject_digest IS NOT NULL
) AS e
WHERE EXISTS (
    SELECT 1 FROM plan_deleted_manifests AS a WHERE a.repository = e.repository AND a.digest = e.first_digest
)
AND EXISTS (
    SELECT 1 FROM plan_deleted_manifests AS b WHERE b.repository = e.repository AND b.digest = e.then_digest
)
