-- Planner, every tag with what the planner needs to decide it: the time it was updated, its
-- manifest's size, whether it is a tag on a referrer, and the protection that keeps it
-- (sql/plan_protections.sql; NULL when none does).
-- Binds: plan_protections.
SELECT p.repository, p.tag, p.digest, p.changed_at AS updated_at, p.size, p.is_referrer, p.reason AS protection
FROM plan_protections AS p
WHERE p.tag IS NOT NULL
