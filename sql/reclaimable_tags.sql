-- Query `reclaimable_tags` (regstat report, "reclaimable now"): every tag as
-- `plan-gc --untagged` with the default grace decides it, in the columns of the planner's
-- plan_tags that sql/plan_seed.sql reads. No tag rule deletes a tag; a tag on a referrer whose
-- subject its repository holds follows that subject (regstat.planner FOLLOWS: it keeps
-- nothing by itself) unless a protection keeps it: younger than the grace period or without
-- a time, its manifest locked, or its repository blocked.
-- Binds: tags, manifests, reclaim_blocked, reclaim_settings (one row: grace_cutoff).
SELECT
    t.repository,
    t.tag,
    t.digest,
    FALSE AS deleted,
    CASE
        WHEN EXISTS (
            SELECT 1
            FROM manifests AS m
            JOIN manifests AS subject ON subject.repository = m.repository AND subject.digest = m.subject_digest
            WHERE m.repository = t.repository
            AND m.digest = t.digest
            AND NOT COALESCE(m.locked, FALSE)
            AND t.updated_at IS NOT NULL
            AND t.updated_at <= g.grace_cutoff
            AND NOT EXISTS (SELECT 1 FROM reclaim_blocked AS b WHERE b.repository = t.repository)
        ) THEN TRUE
        ELSE FALSE
    END AS follows
FROM tags AS t
CROSS JOIN reclaim_settings AS g
