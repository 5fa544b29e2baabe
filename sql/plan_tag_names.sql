-- Planner, every tag by name, for the keep_tags patterns (matched by Python's regular
-- expressions, not the engine's) of the repositories whose rule has some.
-- Binds: tags.
SELECT t.repository, t.tag
FROM tags AS t
