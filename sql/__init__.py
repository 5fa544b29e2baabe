"""SQL as data: one query per .sql file, shipped as the package regstat.sql."""
