-- Query `reclaimable_protected` (regstat report, "reclaimable now"): the manifests that
-- `plan-gc --untagged` with the default grace keeps whatever tags say, as
-- sql/plan_protected.sql finds them under that policy: every manifest of a repository where
-- the plan deletes nothing (reclaim_blocked), one that could not be read, a root (an OCI
-- layout's unnamed index.json entry), a locked one, and one younger than the grace period (a missing push time counts as young). In the columns of
-- the planner's plan_protected, which sql/plan_seed.sql and plan_kept_subjects.sql read.
-- Binds: manifests, reclaim_settings (one row: grace_cutoff), reclaim_blocked.
SELECT m.repository, m.digest, 'protected' AS reason
FROM manifests AS m
CROSS JOIN reclaim_settings AS s
WHERE EXISTS (SELECT 1 FROM reclaim_blocked AS b WHERE b.repository = m.repository)
OR m.status <> 'ok'
OR COALESCE(m.root, FALSE)
OR COALESCE(m.locked, FALSE)
OR m.pushed_at IS NULL
OR m.pushed_at > s.grace_cutoff
