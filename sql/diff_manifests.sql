-- Table `diff_manifests` (regstat diff): each manifest present in a repository in one of the
-- snapshots bound as schemas `old` and `new` and not in the other.
--   change: 'added' (only in new) or 'removed' (only in old); media_type and size (the
--           manifest's own bytes) as the snapshot that has it records them.
-- Binds: old.manifests, new.manifests.
SELECT
    COALESCE(n.repository, o.repository) AS repository,
    COALESCE(n.digest, o.digest) AS digest,
    CASE WHEN o.digest IS NULL THEN 'added' ELSE 'removed' END AS change,
    COALESCE(n.media_type, o.media_type) AS media_type,
    CAST(COALESCE(n.size, o.size) AS BIGINT) AS size
FROM old.manifests AS o
FULL OUTER JOIN new.manifests AS n ON n.repository = o.repository AND n.digest = o.digest
WHERE o.digest IS NULL OR n.digest IS NULL
