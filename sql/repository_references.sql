-- View `repository_references`: one row per (repository, blob) that a manifest of the
-- repository references (view manifest_references: manifest blobs, configs, layers, index
-- children), with how it is referenced there.
--   size: the largest size the repository's manifests give it;
--   manifests: its (repository, manifest) pairs in this repository;
--   layer_manifests: those listing it as config or layer;
--   kept_manifests: those whose manifest is reachable (table reachable), so it must stay;
--   media_type_rank: rank of the smallest config or layer media type given to it here (NULL
--                    if none; table media_type_ranks has the media type);
--   manifest_digest: the smallest digest of those manifests (the only one when manifests = 1:
--                    what a manifest alone would free is found without regrouping the
--                    descriptors).
-- The per-blob view blob_references and the per-repository figures read this one.
-- Binds: manifest_references, reachable.
SELECT
    r.repository,
    r.digest,
    MAX(r.size) AS size,
    CAST(COUNT(*) AS BIGINT) AS manifests,
    CAST(SUM(r.layer) AS BIGINT) AS layer_manifests,
    CAST(SUM(CASE WHEN k.digest IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS kept_manifests,
    MIN(r.media_type_rank) AS media_type_rank,
    MIN(r.manifest_digest) AS manifest_digest
FROM manifest_references AS r
LEFT JOIN reachable AS k ON k.repository = r.repository AND k.digest = r.manifest_digest
GROUP BY r.repository, r.digest
