-- View `manifest_references`: what each (repository, manifest) pair references, as the
-- definitions in DESIGN.md count it: its own manifest blob, its config, its layers and its
-- index children (subjects do not count: a referrer does not keep its subject alive). One row
-- per (repository, manifest_digest, digest), whatever the number of descriptors naming it.
-- Binds: manifests, descriptors.
SELECT u.repository, u.manifest_digest, u.digest, MAX(u.size) AS size
FROM (
    SELECT repository, digest AS manifest_digest, digest, size
    FROM manifests
    UNION ALL
    SELECT repository, manifest_digest, digest, size
    FROM descriptors
    WHERE role IN ('config', 'layer', 'manifest')
) AS u
GROUP BY u.repository, u.manifest_digest, u.digest
