-- Planner, stale uploads: uploads in progress in repositories the policy applies to and may
-- touch, older than the grace period (from started_at, else the newest file time; a missing
-- time counts as young unless the grace is off).
-- Binds: uploads, plan_settings, plan_repositories.
SELECT u.repository, u.uuid, CAST(u.size AS BIGINT) AS size, COALESCE(u.started_at, u.modified_at) AS started_at
FROM uploads AS u
CROSS JOIN plan_settings AS s
JOIN plan_repositories AS r ON r.repository = u.repository
WHERE r.rule IS NOT NULL
AND r.blocked IS NULL
AND (s.grace_cutoff IS NULL OR COALESCE(u.started_at, u.modified_at) <= s.grace_cutoff)
