"""The databases keys and ledger share: a SQLite file (one edge) or PostgreSQL (a fleet)."""
