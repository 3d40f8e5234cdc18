"""The user's memory: chunks with embeddings (Chroma) and a lexical index (SQLite FTS5)."""
