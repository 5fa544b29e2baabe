"""Registry sources: where a crawl reads from."""
