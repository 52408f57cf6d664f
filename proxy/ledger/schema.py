"""The ledger table's migrations, one list per dialect; a step is never edited once released."""

from __future__ import annotations

SQLITE_STEPS: tuple[str, ...] = (
    """
    CREATE TABLE warmgate_ledger (
        request_id TEXT PRIMARY KEY,
        key_id TEXT,
        model TEXT,
        backend TEXT,
        endpoint TEXT NOT NULL,
        stream INTEGER NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        status INTEGER NOT NULL,
        billed INTEGER NOT NULL,
        billed_reason TEXT NOT NULL,
        price_micro_usd INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        queue_ms REAL NOT NULL DEFAULT 0,
        ttft_ms REAL,
        total_ms REAL NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        cancelled INTEGER NOT NULL DEFAULT 0,
        error_code TEXT
    );
    CREATE INDEX warmgate_ledger_key_time ON warmgate_ledger (key_id, started_at);
    CREATE INDEX warmgate_ledger_time ON warmgate_ledger (started_at)
    """,
)

POSTGRES_STEPS: tuple[str, ...] = (
    """
    CREATE TABLE warmgate_ledger (
        request_id TEXT PRIMARY KEY,
        key_id TEXT,
        model TEXT,
        backend TEXT,
        endpoint TEXT NOT NULL,
        stream BOOLEAN NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION NOT NULL,
        status INTEGER NOT NULL,
        billed BOOLEAN NOT NULL,
        billed_reason TEXT NOT NULL,
        price_micro_usd BIGINT NOT NULL DEFAULT 0,
        prompt_tokens BIGINT NOT NULL DEFAULT 0,
        cached_tokens BIGINT NOT NULL DEFAULT 0,
        completion_tokens BIGINT NOT NULL DEFAULT 0,
        queue_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        ttft_ms DOUBLE PRECISION,
        total_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        cancelled BOOLEAN NOT NULL DEFAULT FALSE,
        error_code TEXT
    );
    CREATE INDEX warmgate_ledger_key_time ON warmgate_ledger (key_id, started_at);
    CREATE INDEX warmgate_ledger_time ON warmgate_ledger (started_at)
    """,
)
