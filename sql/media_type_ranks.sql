-- Table `media_type_ranks` (regstat computes it as a connection opens, or for `regstat sql`
-- when a query reads it, as it does `reachable`): each media type the
-- descriptors give, with its rank in the media types' sort order (1, 2, ...). The references
-- views find a blob's smallest media type as its smallest rank, an integer (the smallest
-- string cost a string copy per group: about 1.3 s of a 10M-descriptor report), and
-- blob_references turns it back into text.
-- Binds: descriptors.
SELECT
    t.media_type,
    CAST(ROW_NUMBER() OVER (ORDER BY t.media_type NULLS LAST) AS INTEGER) AS media_type_rank
FROM (SELECT DISTINCT d.media_type FROM descriptors AS d WHERE d.media_type IS NOT NULL) AS t
