-- View `blob_references`: one row per blob that some manifest of any repository references
-- (manifest blob, config, layer or index child), registry-wide.
--   size: the stored size (blobs.size), else the largest size a descriptor gives it;
--   manifests: the (repository, manifest) pairs referencing it in any of those roles;
--   layer_manifests: the pairs listing it as config or layer (docs/design.md "references");
--   kept_manifests: the pairs whose manifest is reachable: 0 means deleting every orphaned
--                   manifest frees it;
--   repositories: distinct repositories referencing it (1: exclusive to one repository);
--   layer_repositories: distinct repositories listing it as config or layer;
--   media_type: smallest config or layer media type given to it (NULL if none);
--   stored, modified_at: from blobs (stored FALSE where the snapshot has no stored blob), so
--                        that readers need not join the blobs again.
-- Binds: repository_references, blobs, media_type_ranks.
SELECT
    g.digest,
    CAST(COALESCE(b.size, g.size) AS BIGINT) AS size,
    g.manifests,
    g.layer_manifests,
    g.kept_manifests,
    g.repositories,
    g.layer_repositories,
    t.media_type,
    COALESCE(b.stored, FALSE) AS stored,
    b.modified_at
FROM (
    SELECT
        rr.digest,
        MAX(rr.size) AS size,
        CAST(SUM(rr.manifests) AS BIGINT) AS manifests,
        CAST(SUM(rr.layer_manifests) AS BIGINT) AS layer_manifests,
        CAST(SUM(rr.kept_manifests) AS BIGINT) AS kept_manifests,
        CAST(COUNT(*) AS BIGINT) AS repositories,
        CAST(SUM(CASE WHEN rr.layer_manifests > 0 THEN 1 ELSE 0 END) AS BIGINT) AS layer_repositories,
        MIN(rr.media_type_rank) AS media_type_rank
    FROM repository_references AS rr
    GROUP BY rr.digest
) AS g
LEFT JOIN blobs AS b ON b.digest = g.digest
LEFT JOIN media_type_ranks AS t ON t.media_type_rank = g.media_type_rank
