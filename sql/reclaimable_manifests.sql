-- Query `reclaimable_manifests` (regstat report, "reclaimable now"): the manifests
-- `plan-gc --untagged` with the default grace deletes: every manifest present that what it
-- keeps (table reachable, seeded by plan_seed over reclaimable_tags and
-- the protected manifests of sql/plan_protected.sql) leaves out, as sql/plan_manifests.sql.
-- Binds: manifests, reachable.
SELECT m.repository, m.digest
FROM manifests AS m
WHERE NOT EXISTS (
    SELECT 1 FROM reachable AS k WHERE k.repository = m.repository AND k.digest = m.digest
)
