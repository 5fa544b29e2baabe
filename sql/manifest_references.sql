-- View `manifest_references`: what each (repository, manifest) pair references, as the
-- definitions in docs/design.md count it: its own manifest blob, its config, its layers and its
-- index children (subjects do not count: a referrer does not keep its subject alive). One row
-- per (repository, manifest_digest, digest), whatever the number of descriptors naming it.
--   size: the largest size the manifest or its descriptors give the blob;
--   layer: 1 when the manifest lists the blob as config or layer (a "reference" in docs/design.md's
--          sense, counted by layer sharing, logical bytes and dedup savings), else 0;
--   media_type_rank: the smallest rank (table media_type_ranks) of the media types of those
--                    config and layer descriptors, i.e. the smallest media type's (NULL if none).
-- Binds: manifests, descriptors, media_type_ranks.
-- A manifest's own blob comes from `manifests` alone, and a descriptor naming its own manifest
-- (impossible for a true digest; a damaged source may claim it) adds nothing beyond it.
-- Only descriptors the crawl marked `repeated` (the manifest names their digest twice) need
-- grouping; the others are one row each already. NULL (a schema 2 snapshot) is grouped too.
-- Row-group statistics let DuckDB skip the second scan where no descriptor is repeated.
SELECT
    m.repository,
    m.digest AS manifest_digest,
    m.digest,
    m.size,
    0 AS layer,
    CAST(NULL AS INTEGER) AS media_type_rank
FROM manifests AS m
UNION ALL
SELECT
    d.repository,
    d.manifest_digest,
    d.digest,
    d.size,
    CASE WHEN d.role = 'manifest' THEN 0 ELSE 1 END AS layer,
    CASE WHEN d.role = 'manifest' THEN NULL ELSE t.media_type_rank END AS media_type_rank
FROM descriptors AS d
LEFT JOIN media_type_ranks AS t ON t.media_type = d.media_type
WHERE d.role IN ('config', 'layer', 'manifest') AND d.digest <> d.manifest_digest AND d.repeated = FALSE
UNION ALL
SELECT
    d.repository,
    d.manifest_digest,
    d.digest,
    MAX(d.size) AS size,
    MAX(CASE WHEN d.role = 'manifest' THEN 0 ELSE 1 END) AS layer,
    MIN(CASE WHEN d.role = 'manifest' THEN NULL ELSE t.media_type_rank END) AS media_type_rank
FROM descriptors AS d
LEFT JOIN media_type_ranks AS t ON t.media_type = d.media_type
WHERE d.role IN ('config', 'layer', 'manifest') AND d.digest <> d.manifest_digest AND (d.repeated OR d.repeated IS NULL)
GROUP BY d.repository, d.manifest_digest, d.digest
