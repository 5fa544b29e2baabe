-- Planner, protections (docs/design.md "Safety rules of the planner"), the one place they are
-- defined: for every tag (tag set) and every manifest (tag NULL), the first protection that
-- keeps it whatever the tag rules select, or NULL. sql/plan_protected.sql keeps the
-- manifests' rows, which seed what the plan keeps; the planner reads the tags' rows before
-- it applies a rule's selectors (regstat.plan.planner); the report reads both under the
-- fixed policy of "reclaimable now" (regstat.report.reclaimable).
--   outside the policy's repositories; a repository the plan may not touch (crawl errors, a
--   manifest that could not be read: plan_repositories.blocked says which); a tag keep_tags
--   protects (plan_keep_tags: Python's regular expressions match the patterns); a manifest
--   that could not be read; a root (an entry of an OCI layout's index.json without a name);
--   locked, unless include_locked (a tag: the tag's own lock or its manifest's; a manifest: its
--   own, and a locked tag keeps its manifest as every kept tag does); younger than the grace
--   period (a tag by its update, a manifest by its push; a missing time counts as young,
--   unless the grace is off: grace_cutoff NULL); a manifest updated since the rule's
--   ago_cutoff (acr purge's --ago: its updated_at, else its push; a missing time counts as
--   young); pulled since the rule's pulled_cutoff; and, where the rule does not delete
--   untagged manifests, a manifest nothing reaches now (reachable_now).
--   is_referrer: a tag on a referrer whose subject its repository holds (it follows that
--   subject unless a protection keeps it).
-- Binds: tags, manifests, reachable_now, plan_settings (one row: taken_at, grace_cutoff,
--        include_locked), plan_repositories (repository, rule, untagged, pulled_cutoff,
--        pulled_within, blocked, ago_cutoff, ago), plan_keep_tags (repository, tag, pattern: quoted).
SELECT
    x.repository,
    x.tag,
    x.digest,
    x.changed_at,
    x.size,
    x.is_referrer,
    CASE
        WHEN r.rule IS NULL THEN 'outside the repositories the policy applies to'
        WHEN r.blocked IS NOT NULL THEN r.blocked
        WHEN k.pattern IS NOT NULL THEN 'protected by keep_tags ' || k.pattern
        WHEN x.status <> 'ok' THEN 'the manifest could not be read'
        WHEN x.root THEN 'index.json lists it (an entry without a name)'
        WHEN COALESCE(x.locked, FALSE) AND NOT s.include_locked THEN 'locked'
        WHEN s.grace_cutoff IS NOT NULL AND (x.changed_at IS NULL OR x.changed_at > s.grace_cutoff)
            THEN 'younger than the grace period'
        WHEN x.tag IS NULL AND r.ago_cutoff IS NOT NULL
            AND (COALESCE(x.updated_at, x.changed_at) IS NULL OR COALESCE(x.updated_at, x.changed_at) > r.ago_cutoff)
            THEN 'updated less than ' || r.ago || ' ago (ago)'
        WHEN r.pulled_cutoff IS NOT NULL AND x.last_pulled_at >= r.pulled_cutoff THEN 'pulled within ' || r.pulled_within
        WHEN x.tag IS NULL AND NOT r.untagged AND NOT EXISTS (
            SELECT 1 FROM reachable_now AS n WHERE n.repository = x.repository AND n.digest = x.digest
        ) THEN 'untagged, and the rule keeps untagged manifests'
    END AS reason
FROM (
    SELECT
        t.repository,
        t.tag,
        t.digest,
        t.updated_at AS changed_at,
        m.size,
        CASE WHEN s.digest IS NOT NULL THEN TRUE ELSE FALSE END AS is_referrer,
        'ok' AS status,
        FALSE AS root,
        COALESCE(t.locked, FALSE) OR COALESCE(m.locked, FALSE) AS locked,
        CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS updated_at,
        m.last_pulled_at
    FROM tags AS t
    LEFT JOIN manifests AS m ON m.repository = t.repository AND m.digest = t.digest
    LEFT JOIN manifests AS s ON s.repository = m.repository AND s.digest = m.subject_digest
    UNION ALL
    SELECT
        m.repository,
        CAST(NULL AS VARCHAR) AS tag,
        m.digest,
        m.pushed_at,
        m.size,
        FALSE,
        m.status,
        m.root,
        m.locked,
        m.updated_at,
        m.last_pulled_at
    FROM manifests AS m
) AS x
CROSS JOIN plan_settings AS s
LEFT JOIN plan_repositories AS r ON r.repository = x.repository
LEFT JOIN plan_keep_tags AS k ON k.repository = x.repository AND k.tag = x.tag
