-- Every digest the snapshot tables name (one column, digest; repeats allowed): regstat.snapshot.digest_ids
-- numbers them once, into the table `digests`, before the tables are assembled.
-- Binds: the staging views of regstat.crawl.assemble.
SELECT digest FROM stage_stored_blobs
UNION ALL SELECT digest FROM stage_revisions
UNION ALL SELECT subject_digest FROM stage_manifest_info
UNION ALL SELECT digest FROM stage_manifest_descriptors
UNION ALL SELECT digest FROM stage_tag_links
UNION ALL SELECT digest FROM stage_layer_links
