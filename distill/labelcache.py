"""Per-text teacher labels: a text one teacher has labelled over one label set is never labelled again.

One SQLite file per (teacher settings, label set), under `<outputs>/label-cache/`, maps the sha256 of a text
to the float32 probabilities the teacher gave it. Label files (distill/labelstore.py) stay one per labelling
of a split, keyed by the whole file's fingerprint; this cache sits under them, so appending rows to a file,
sampling another pool size or editing a few rows makes a new label file whose known texts come from here
and only the new ones reach the teacher.

SQLite, not a file of our own: lookups by key without reading the whole cache (memory stays flat in the
number of texts), atomic commits (a kill never leaves a half-written entry that a later run would reuse),
and a lock that lets two runs sharing a teacher write at once.
"""
from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DistillError, no_room

log = logging.getLogger(__name__)
QUERY_ROWS = 500  # keys an SQL lookup names: below SQLite's limit on bound parameters (999 before 3.32)


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class TextCache:
    """`get` the cached probabilities of texts (None where unknown), `put` those of newly labelled ones."""

    def __init__(self, path: Path, n_labels: int):
        self.path, self.n_labels, self._db = Path(path), n_labels, None

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, opened on first use (a labelling found whole on disk never opens it)."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                # a minute's patience with another run writing the same cache (it commits a shard at a time)
                db = sqlite3.connect(self.path, timeout=60)
                db.execute("CREATE TABLE IF NOT EXISTS probs (key BLOB PRIMARY KEY, probs BLOB NOT NULL) WITHOUT ROWID")
                db.commit()
            except sqlite3.DatabaseError as e:
                raise DistillError(f"the label cache {self.path} cannot be read ({e}); delete it (the labels "
                                   f"themselves are kept in their own files) or set label.cache=false") from e
            self._db = db
        return self._db

    def get(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        keys = [text_key(t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), QUERY_ROWS):
            part = list(set(keys[start:start + QUERY_ROWS]))
            rows = self._sql(f"SELECT key, probs FROM probs WHERE key IN ({','.join('?' * len(part))})", part)
            for key, blob in rows:
                probs = np.frombuffer(blob, dtype=np.float32)
                if len(probs) == self.n_labels:  # anything else was not written by this code: ignored, relabelled
                    found[key] = probs
        return [found.get(k) for k in keys]

    def put(self, texts: Sequence[str], probs: np.ndarray) -> None:
        probs = np.asarray(probs, dtype=np.float32)
        self._sql("INSERT OR REPLACE INTO probs VALUES (?, ?)",
                  [(text_key(t), p.tobytes()) for t, p in zip(texts, probs)], many=True)

    def _sql(self, query: str, params: list, many: bool = False) -> list:
        try:
            if many:
                with self.db:  # one transaction: all of them or none
                    self.db.executemany(query, params)
                return []
            return self.db.execute(query, params).fetchall()
        except sqlite3.DatabaseError as e:  # a damaged file, or another run holding the lock for over a minute
            if no_room(e):  # said as every full disk is (distill/__main__.py)
                raise
            raise DistillError(f"the label cache {self.path} cannot be used ({e}); delete it (the labels "
                               f"themselves are kept in their own files) or set label.cache=false") from e

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM probs").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
