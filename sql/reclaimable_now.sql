-- Query `reclaimable_now` (regstat report): one row, what `plan-gc --untagged` with the
-- default grace frees, in its parts (DESIGN.md "reclaimable now"). regstat.report.reclaimable adds
-- them up as the planner does: the deleted blobs and stale uploads, or, where the plan may
-- delete no blobs, the released blobs as an estimate.
--   manifests: the manifests it deletes (reclaim_deleted);
--   released_blobs, released_bytes: every blob only deleted manifests reference (the estimate);
--   freed_blobs, freed_bytes: those of them stored and past the grace period (deleted blobs);
--   unreferenced_blobs, unreferenced_bytes: stored blobs nothing references, past the grace;
--   uploads, upload_bytes: the stale uploads the plan deletes (reclaim_uploads: the planner's
--       sql/plan_uploads.sql under this policy); a size S3 does not show counts as 0, as in
--       the plan.
-- Binds: reclaim_deleted, reclaim_released (reclaimable_blobs), unreferenced_blobs,
--        reclaim_uploads, plan_settings.
SELECT
    deleted.manifests,
    released.released_blobs,
    released.released_bytes,
    released.freed_blobs,
    released.freed_bytes,
    garbage.unreferenced_blobs,
    garbage.unreferenced_bytes,
    stale.uploads,
    stale.upload_bytes
FROM (
    SELECT CAST(COUNT(*) AS BIGINT) AS manifests
    FROM reclaim_deleted AS d
) AS deleted
CROSS JOIN (
    SELECT
        CAST(COUNT(*) AS BIGINT) AS released_blobs,
        CAST(COALESCE(SUM(r.size), 0) AS BIGINT) AS released_bytes,
        CAST(SUM(CASE WHEN r.stored AND NOT r.young THEN 1 ELSE 0 END) AS BIGINT) AS freed_blobs,
        CAST(COALESCE(SUM(CASE WHEN r.stored AND NOT r.young THEN r.size ELSE 0 END), 0) AS BIGINT) AS freed_bytes
    FROM reclaim_released AS r
) AS released
CROSS JOIN (
    SELECT
        CAST(COUNT(*) AS BIGINT) AS unreferenced_blobs,
        CAST(COALESCE(SUM(u.size), 0) AS BIGINT) AS unreferenced_bytes
    FROM unreferenced_blobs AS u
    CROSS JOIN plan_settings AS s
    WHERE u.modified_at IS NOT NULL AND u.modified_at <= s.grace_cutoff
) AS garbage
CROSS JOIN (
    SELECT
        CAST(COUNT(*) AS BIGINT) AS uploads,
        CAST(COALESCE(SUM(u.size), 0) AS BIGINT) AS upload_bytes
    FROM reclaim_uploads AS u
) AS stale
