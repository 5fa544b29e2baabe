-- Planner, blobs the plan releases: stored blobs no manifest references ('unreferenced'), and
-- blobs every (repository, manifest) pair referencing which is deleted by the plan ('last
-- reference deleted': blob_references.kept_manifests = 0 once table reachable holds what the
-- plan keeps). young: younger than the grace period (a missing time counts as young, unless
-- the grace is off). The planner turns these into delete_blob actions only where the source
-- sweeps blobs separately (storage and OCI layouts) and nothing restricts it; elsewhere they
-- are an estimate of what the registry will free.
-- Binds: blobs, blob_references, plan_settings.
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
    -- One outer join of the blobs with blob_references gives both kinds.
    SELECT
        COALESCE(r.digest, b.digest) AS digest,
        COALESCE(r.size, b.size) AS size,
        COALESCE(b.stored, FALSE) AS stored,
        b.modified_at,
        CASE WHEN r.digest IS NULL THEN 'unreferenced' ELSE 'last reference deleted' END AS reason
    FROM blobs AS b
    FULL OUTER JOIN blob_references AS r ON r.digest = b.digest
    WHERE (r.digest IS NULL AND b.stored) OR r.kept_manifests = 0
) AS c
CROSS JOIN plan_settings AS s
