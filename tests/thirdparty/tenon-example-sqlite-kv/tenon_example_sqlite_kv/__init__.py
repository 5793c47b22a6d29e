"""An example KV connector package: KV blocks in one SQLite database file (see `connector`)."""
