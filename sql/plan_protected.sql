-- Planner, protected manifests: every manifest the plan must keep whatever the tag rules say,
-- with the first protection that applies (sql/plan_protections.sql defines them). These
-- seed the plan's reachability (plan_seed), so what they reach (index children, referrers)
-- is kept too.
-- Binds: plan_protections.
SELECT p.repository, p.digest, p.reason
FROM plan_protections AS p
WHERE p.tag IS NULL
AND p.reason IS NOT NULL
