"""A registry read through its HTTP API (the distribution spec): transport, auth, client, source."""
