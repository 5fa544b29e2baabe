-- apply-gc, before the upload phase: whether each planned upload is still there in the fresh
-- crawl of the whole source. verdict: ok, or gone (finished or removed since the plan).
-- Binds: apply_actions, uploads.
SELECT
    a.position,
    CASE
        WHEN NOT EXISTS (SELECT 1 FROM uploads AS u WHERE u.repository = a.repository AND u.uuid = a.uuid) THEN 'gone'
        ELSE 'ok'
    END AS verdict
FROM apply_actions AS a
WHERE a.action = 'delete_upload'
