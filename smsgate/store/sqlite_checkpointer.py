"""SQLite's WAL kept short under load, beside the store's writer thread."""

import logging
import os
import sqlite3
import threading

log = logging.getLogger(__name__)


class Checkpointer(threading.Thread):
    """Copies the WAL back into the database every `interval` seconds, on a connection
    of its own. PASSIVE checkpoints never block the writer; when the WAL has grown
    large it asks the store's writer thread for a RESTART checkpoint between two
    transactions (`restart_wanted`): from here it would wait for a gap between commits
    that a busy writer never leaves, and the WAL would grow without end. After it the
    next write begins the WAL file anew, which bounds it under sustained load. The file
    keeps its size (SQLite overwrites it from the start) until the database is idle: a
    TRUNCATE then gives the disk space back. Truncating under load instead
    (journal_size_limit) stalled every commit for ~100 ms each time."""

    def __init__(self, path: str, interval: float = 0.5, restart_pages: int = 50_000,
                 truncate_bytes: int = 16 << 20) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.path = path
        self.interval = interval
        self.restart_pages = restart_pages
        self.truncate_bytes = truncate_bytes
        self._last_frames = -1
        self.restart_wanted = threading.Event()
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 100")
        except sqlite3.Error:
            log.exception("checkpointer cannot open %s", self.path)
            return
        try:
            while not self._stopping.wait(self.interval):
                self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            _busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            idle = frames == done == self._last_frames  # nothing written since last time
            self._last_frames = frames
            if frames > self.restart_pages:
                self.restart_wanted.set()
            elif idle and self._wal_bytes() > self.truncate_bytes:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # busy now; the next round tries again
            log.debug("checkpoint skipped: %s", exc)

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)
