"""The generation cache: SQLite, one file per home, safe across processes (WAL). A result is stored
under a key of (model version, request), as soon as its batch finishes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ealign_dagster.core.chat import Request, Result


class GenerationCache:
    """SQLite key -> result; one file per home, safe across processes (WAL)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, text TEXT, prompt_tokens INT,"
                " completion_tokens INT, created REAL)"
            )

    def _connect(self):
        return sqlite3.connect(self.path, timeout=60)

    @staticmethod
    def key(model_version: str, req: Request) -> str:
        blob = json.dumps([model_version, asdict(req)], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, Result]:
        from ealign_dagster.core.chat import Result

        out = {}
        with self._connect() as con:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                q = f"SELECT key, text, prompt_tokens, completion_tokens FROM generations WHERE key IN ({','.join('?' * len(part))})"
                for k, t, p, c in con.execute(q, part):
                    out[k] = Result(t, p, c, cached=True)
        return out

    def put_many(self, items: list[tuple[str, Result]]) -> None:
        with self._lock, self._connect() as con:
            con.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?)",
                [(k, r.text, r.prompt_tokens, r.completion_tokens, time.time()) for k, r in items],
            )
