"""The app's one per-session cache: what a browser tab left on the server (its current latent point,
its last diffusion run, ...), evicted by age and by size, and dropped when the tab closes.

Built on cachetools (a well-kept library, instead of a hand-made LRU per panel):

- sessions are kept in a ``TTLCache``: a session untouched for ``idle_s`` seconds goes, and beyond
  ``max_sessions`` the least recently used one goes. Every read or write of a session renews it, so an
  open tab that is being used is never evicted;
- inside a session each kind of entry (``"point"``, ``"run"``, ...) is its own small ``LRUCache`` of
  ``per_kind`` items, so one student's new entries can only evict that student's own old ones;
- ``drop(session)`` is wired to ``demo.unload`` (see ``build_app``): closing the tab frees everything it held at once.

Thread-safe: Gradio serves handlers from a thread pool.
"""
from __future__ import annotations

import threading

from cachetools import LRUCache, TTLCache


class SessionCache:
    def __init__(self, max_sessions: int = 256, idle_s: float = 3600.0, per_kind: int = 4):
        self._sessions: TTLCache = TTLCache(maxsize=max_sessions, ttl=idle_s)
        self._lock = threading.Lock()
        self.per_kind = per_kind

    @staticmethod
    def key_of(request) -> str | None:
        """The session of a gr.Request (None for calls without one, e.g. the Python API)."""
        return getattr(request, "session_hash", None) or None

    def _entries(self, session: str, create: bool) -> dict | None:
        entries = self._sessions.get(session)
        if entries is None and create:
            entries = {}
        if entries is not None:
            self._sessions[session] = entries  # (re)insert: renews the session's age
        return entries

    def put(self, session: str | None, kind: str, key, value) -> None:
        if session is None:
            return
        with self._lock:
            entries = self._entries(session, create=True)
            entries.setdefault(kind, LRUCache(maxsize=self.per_kind))[key] = value

    def get(self, session: str | None, kind: str, key, default=None):
        if session is None:
            return default
        with self._lock:
            entries = self._entries(session, create=False)
            if not entries or kind not in entries:
                return default
            return entries[kind].get(key, default)

    def drop(self, session: str | None) -> int:
        """Forget everything ``session`` held; returns how many entries were freed."""
        with self._lock:
            entries = self._sessions.pop(session, None) if session else None
        return sum(len(c) for c in entries.values()) if entries else 0

    def count(self, session: str | None = None) -> int:
        """Entries held by ``session`` (all sessions when None)."""
        with self._lock:
            self._sessions.expire()
            groups = [self._sessions.get(session) or {}] if session else list(self._sessions.values())
        return sum(len(c) for entries in groups for c in entries.values())
