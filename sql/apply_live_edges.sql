-- apply-gc: what holds a manifest in the fresh crawl, one row each: an index listing it
-- (from_digest lists to_digest) or a referrer naming it as its subject (from_digest is the
-- referrer). Binds: descriptors, manifests.
SELECT d.repository, d.manifest_digest AS from_digest, d.digest AS to_digest
FROM descriptors AS d
WHERE d.role = 'manifest'
UNION
SELECT m.repository, m.digest AS from_digest, m.subject_digest AS to_digest
FROM manifests AS m
WHERE m.subject_digest IS NOT NULL
