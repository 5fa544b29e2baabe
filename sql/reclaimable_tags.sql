-- Query `reclaimable_tags` (regstat report, "reclaimable now"): every tag as
-- `plan-gc --untagged` decides it, in the columns of the planner's plan_tags that
-- sql/plan_seed.sql reads: no tag rule deletes a tag, and a tag on a referrer follows its
-- subject (it keeps nothing by itself) unless a protection keeps it (sql/plan_protections.sql
-- under that policy: its repository blocked, younger than the grace period, locked), as
-- regstat.plan.planner decides it.
-- Binds: plan_protections.
SELECT
    p.repository,
    p.tag,
    p.digest,
    FALSE AS deleted,
    CASE WHEN p.is_referrer AND p.reason IS NULL THEN TRUE ELSE FALSE END AS follows
FROM plan_protections AS p
WHERE p.tag IS NOT NULL
