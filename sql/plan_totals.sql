-- Planner, the plan's totals: how many actions of each kind.
-- Binds: plan_actions.
SELECT a.action, CAST(COUNT(*) AS BIGINT) AS actions
FROM plan_actions AS a
GROUP BY a.action
