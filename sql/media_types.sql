-- View `media_types`: manifests by kind, one row per kind present.
--   kind: the first that applies:
--     'unknown'   the manifest's own media type is unknown, or it could not be read
--                 (status other than 'ok'): what it references cannot be told;
--     'signature' cosign, notation or sigstore-bundle artifact types (artifactType, else the
--                 config media type), or a cosign simple-signing layer (tag-based `.sig`);
--     'sbom'      SPDX, CycloneDX, syft or cosign SBOM artifact types, or such a layer;
--     'index'     OCI image index or Docker manifest list;
--     'image'     OCI or Docker image manifest without artifactType whose config is an image
--                 config (schema 1 manifests, which have no config, too);
--     'artifact'  any other readable manifest (Helm charts, attestations, WASM, ...).
--   manifests: (repository, manifest) rows; digests: distinct manifest digests;
--   manifest_bytes: sizes of the distinct manifest blobs of this kind;
--   blob_bytes: sizes of the distinct config and layer blobs its manifests reference (a blob
--               referenced by manifests of several kinds counts in each of them).
-- Binds: manifests, descriptors, blobs.
WITH layer_kinds AS (
    SELECT
        d.repository,
        d.manifest_digest,
        MAX(CASE
            WHEN LOWER(d.media_type) = 'application/vnd.dev.cosign.simplesigning.v1+json' THEN 1
            ELSE 0
        END) AS signature_layers,
        MAX(CASE
            WHEN LOWER(d.media_type) LIKE '%spdx%' OR LOWER(d.media_type) LIKE '%cyclonedx%' THEN 1
            ELSE 0
        END) AS sbom_layers
    FROM descriptors AS d
    WHERE d.role = 'layer'
    GROUP BY d.repository, d.manifest_digest
),
classified AS (
    SELECT
        m.repository,
        m.digest,
        CAST(m.size AS BIGINT) AS size,
        CASE
            WHEN m.status <> 'ok' OR m.media_type IS NULL THEN 'unknown'
            WHEN LOWER(COALESCE(m.artifact_type, m.config_media_type, '')) LIKE 'application/vnd.dev.cosign.artifact.sig%'
                OR LOWER(COALESCE(m.artifact_type, m.config_media_type, '')) LIKE 'application/vnd.cncf.notary.%signature%'
                OR LOWER(COALESCE(m.artifact_type, m.config_media_type, '')) LIKE 'application/vnd.dev.sigstore.bundle%'
                OR COALESCE(l.signature_layers, 0) = 1 THEN 'signature'
            WHEN LOWER(COALESCE(m.artifact_type, m.config_media_type, '')) LIKE '%spdx%'
                OR LOWER(COALESCE(m.artifact_type, m.config_media_type, '')) LIKE '%cyclonedx%'
                OR LOWER(COALESCE(m.artifact_type, m.config_media_type, '')) LIKE 'application/vnd.syft%'
                OR LOWER(COALESCE(m.artifact_type, m.config_media_type, '')) LIKE 'application/vnd.dev.cosign.artifact.sbom%'
                OR COALESCE(l.sbom_layers, 0) = 1 THEN 'sbom'
            WHEN m.media_type IN (
                'application/vnd.oci.image.index.v1+json',
                'application/vnd.docker.distribution.manifest.list.v2+json'
            ) THEN 'index'
            WHEN m.artifact_type IS NULL
                AND (m.config_media_type IS NULL OR m.config_media_type IN (
                    'application/vnd.oci.image.config.v1+json',
                    'application/vnd.docker.container.image.v1+json'
                )) THEN 'image'
            ELSE 'artifact'
        END AS kind
    FROM manifests AS m
    LEFT JOIN layer_kinds AS l ON l.repository = m.repository AND l.manifest_digest = m.digest
),
per_kind AS (
    SELECT c.kind, CAST(COUNT(*) AS BIGINT) AS manifests
    FROM classified AS c
    GROUP BY c.kind
),
per_digest AS (
    SELECT u.kind, CAST(COUNT(*) AS BIGINT) AS digests, CAST(COALESCE(SUM(u.size), 0) AS BIGINT) AS manifest_bytes
    FROM (
        SELECT c.kind, c.digest, MAX(c.size) AS size
        FROM classified AS c
        GROUP BY c.kind, c.digest
    ) AS u
    GROUP BY u.kind
),
per_blob AS (
    SELECT u.kind, CAST(SUM(u.size) AS BIGINT) AS blob_bytes
    FROM (
        SELECT c.kind, d.digest, MAX(COALESCE(b.size, d.size)) AS size
        FROM classified AS c
        JOIN descriptors AS d
            ON d.repository = c.repository AND d.manifest_digest = c.digest AND d.role IN ('config', 'layer')
        LEFT JOIN blobs AS b ON b.digest = d.digest
        GROUP BY c.kind, d.digest
    ) AS u
    GROUP BY u.kind
)
SELECT
    k.kind,
    k.manifests,
    g.digests,
    g.manifest_bytes,
    CAST(COALESCE(b.blob_bytes, 0) AS BIGINT) AS blob_bytes
FROM per_kind AS k
JOIN per_digest AS g ON g.kind = k.kind
LEFT JOIN per_blob AS b ON b.kind = k.kind
ORDER BY k.kind NULLS LAST
