-- Planner, protections: every manifest that the plan must keep whatever the tag rules say,
-- with the first reason that applies. These seed the plan's reachability (plan_seed), so what
-- they reach (index children, referrers) is kept too.
--   outside the policy's repositories; a repository the plan may not touch (crawl errors, a
--   manifest that could not be read); a manifest that could not be read; a root (an entry of
--   an OCI layout's index.json without a name lists it); locked (unless include_locked);
--   younger than the grace period (a missing push time counts as young, unless the grace is
--   off: grace_cutoff NULL); pulled since the rule's pulled_cutoff; and, where the rule does
--   not delete untagged manifests, one that nothing reaches now (reachable_now).
-- Binds: manifests, plan_settings (one row: taken_at, grace_cutoff, include_locked),
--        plan_repositories (repository, rule, untagged, pulled_cutoff, blocked), reachable_now.
SELECT p.repository, p.digest, p.reason
FROM (
    SELECT
        m.repository,
        m.digest,
        CASE
            WHEN r.rule IS NULL THEN 'outside the repositories the policy applies to'
            WHEN r.blocked IS NOT NULL THEN r.blocked
            WHEN m.status <> 'ok' THEN 'the manifest could not be read'
            WHEN m.root THEN 'index.json lists it (an entry without a name)'
            WHEN COALESCE(m.locked, FALSE) AND NOT s.include_locked THEN 'locked'
            WHEN s.grace_cutoff IS NOT NULL AND (m.pushed_at IS NULL OR m.pushed_at > s.grace_cutoff)
                THEN 'younger than the grace period'
            WHEN r.pulled_cutoff IS NOT NULL AND m.last_pulled_at >= r.pulled_cutoff THEN 'pulled recently'
            WHEN NOT r.untagged AND NOT EXISTS (
                SELECT 1 FROM reachable_now AS k WHERE k.repository = m.repository AND k.digest = m.digest
            ) THEN 'untagged, and the rule keeps untagged manifests'
        END AS reason
    FROM manifests AS m
    CROSS JOIN plan_settings AS s
    LEFT JOIN plan_repositories AS r ON r.repository = m.repository
) AS p
WHERE p.reason IS NOT NULL
