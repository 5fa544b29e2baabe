-- Planner, blobs the plan releases: stored blobs no manifest references ('unreferenced'), and
-- blobs every (repository, manifest) pair referencing which is deleted by the plan ('last
-- reference deleted': blob_references.kept_manifests = 0 once table reachable holds what the
-- plan keeps). young: younger than the grace period (a missing time counts as young, unless
-- the grace is off). The planner turns these into delete_blob actions only where the source
-- sweeps blobs separately (storage and OCI layouts) and nothing restricts it; elsewhere they
-- are an estimate of what the registry will free.
-- Binds: unreferenced_blobs, blob_references, plan_settings.
SELECT
    c.digest,
    CAST(c.size AS BIGINT) AS size,
    c.stored,
    c.reason,
    CASE
        WHEN s.grace_cutoff IS NOT NULL AND (c.modified_at IS NULL OR c.modified_at > s.grace_cutoff) THEN TRUE
        ELSE FALSE
    END AS young
FROM (
    SELECT u.digest, u.size, TRUE AS stored, u.modified_at, 'unreferenced' AS reason
    FROM unreferenced_blobs AS u
    UNION ALL
    SELECT r.digest, r.size, r.stored, r.modified_at, 'last reference deleted' AS reason
    FROM blob_references AS r
    WHERE r.kept_manifests = 0
) AS c
CROSS JOIN plan_settings AS s
