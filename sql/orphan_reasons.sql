-- View `orphan_reasons`: every manifest present, with why it is orphaned when nothing reaches
-- it (docs/design.md "Definitions"). The view orphaned_manifests keeps the rows reachability
-- leaves out; the planner (sql/plan_manifests.sql) the rows its own reachability leaves out,
-- so that both word an orphan the same.
--   subject_present: its subject is in the same repository (the planner words a referrer
--           whose subject it deletes apart);
--   reason: 'child of an orphaned index' (an index in the same repository lists it; that
--           index is then orphaned too),
--           'referrer of an orphaned manifest' (subject_present, and the subject orphaned),
--           'referrer of a missing subject' (its subject is not in the repository), else
--           'untagged'. The first that applies wins.
-- Binds: manifests, manifest_edges.
SELECT
    m.repository,
    m.digest,
    m.media_type,
    m.artifact_type,
    m.size,
    m.subject_digest,
    m.status,
    m.pushed_at,
    CASE WHEN subject.digest IS NOT NULL THEN TRUE ELSE FALSE END AS subject_present,
    CASE
        WHEN parent.digest IS NOT NULL THEN 'child of an orphaned index'
        WHEN subject.digest IS NOT NULL THEN 'referrer of an orphaned manifest'
        WHEN m.subject_digest IS NOT NULL THEN 'referrer of a missing subject'
        ELSE 'untagged'
    END AS reason
FROM manifests AS m
LEFT JOIN (
    SELECT DISTINCT e.repository, e.to_digest AS digest
    FROM manifest_edges AS e
    WHERE e.via = 'index'
) AS parent ON parent.repository = m.repository AND parent.digest = m.digest
LEFT JOIN manifests AS subject
    ON subject.repository = m.repository AND subject.digest = m.subject_digest
