-- Planner, the references the plan deletes last: one row per (repository, blob) for each blob
-- that manifests reference (view manifest_references) but none the plan keeps (table
-- plan_kept_blobs), as view repository_references has them (kept_manifests is 0 in each):
--   size: the largest size the repository's manifests give it;
--   manifests: its (repository, manifest) pairs in this repository;
--   manifest_digest: the smallest digest of those manifests.
-- The planner reads no other rows of repository_references: computing only these cut
-- plan-gc's CPU by a quarter at 10M and 100M descriptors (benchmarks/RESULTS.md). That they
-- are not every referenced blob matters: an unreferenced blob is one in neither this table nor
-- plan_kept_blobs (sql/plan_blobs.sql), never merely one missing here.
-- Binds: manifest_references, plan_kept_blobs.
SELECT
    r.repository,
    r.digest,
    MAX(r.size) AS size,
    CAST(COUNT(*) AS BIGINT) AS manifests,
    MIN(r.manifest_digest) AS manifest_digest
FROM manifest_references AS r
LEFT JOIN plan_kept_blobs AS k ON k.digest = r.digest
WHERE k.digest IS NULL
GROUP BY r.repository, r.digest
