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


# ---- Gradio's per-session copy of every component's config, built only when something reads it
#
# Gradio 6.x (``gradio.state_holder.SessionState``) builds, for every new session, the config of every
# block of the app: here 223 blocks, about 40 ms of CPU and ~300 KB per session (the page code inlined in
# the panels' HTML is most of it). It is read only to serve deep links and to record a component's new
# value after an event. A scripted API call is a new session each time, so that work was most of what one
# ``/decode`` cost. The patch keeps the same mapping but fills each block's entry on first read.

class _LazyConfigs(dict):
    """``SessionState.config_values`` with entries computed on first read; whole-dict reads fill it all."""

    def __init__(self, state, keys):
        super().__init__()
        self._state, self._pending, self._values = state, set(keys), {}
        self._order = list(keys)  # the stock dict's order (blocks in creation order), kept for whole-dict reads
        self._lock = threading.RLock()  # one session's events may run in several threads at once

    def _one(self, key):
        if key not in self._pending:
            return
        with self._lock:
            if key in self._pending:
                state = self._state
                config = state.blocks_config.config_for_block(key, [], state.blocks_config.blocks[key])
                if key in self._values and "props" in config:  # a value an event recorded before it was built
                    config["props"]["value"] = self._values.pop(key)
                dict.__setitem__(self, key, config)
                self._pending.discard(key)

    def _all(self):
        if self._order is None:
            return
        with self._lock:
            if self._order is None:
                return
            for key in self._order:
                self._one(key)
            known = set(self._order)
            rest = [(k, v) for k, v in dict.items(self) if k not in known]
            ordered = [(k, dict.__getitem__(self, k)) for k in self._order if dict.__contains__(self, k)] + rest
            dict.clear(self)
            dict.update(self, ordered)
            self._order = None

    def __contains__(self, key):
        return key in self._pending or dict.__contains__(self, key)

    def __getitem__(self, key):
        self._one(key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __setitem__(self, key, value):
        with self._lock:
            self._pending.discard(key)
            self._values.pop(key, None)
            dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        with self._lock:
            self._pending.discard(key)
            self._values.pop(key, None)
            dict.__delitem__(self, key)

    def __len__(self):
        self._all()
        return dict.__len__(self)

    def __iter__(self):
        self._all()
        return dict.__iter__(self)

    def keys(self):
        self._all()
        return dict.keys(self)

    def values(self):
        self._all()
        return dict.values(self)

    def items(self):
        self._all()
        return dict.items(self)

    def copy(self):
        self._all()
        return dict(dict.items(self))

    def __reduce__(self):  # copies and pickles are plain dicts
        return dict, (self.copy(),)


def lazy_session_configs() -> bool:
    """Install the lazy per-session configs into Gradio (idempotent); False where this Gradio's
    SessionState is not the one the patch was written for (then nothing changes)."""
    from gradio import state_holder

    base = state_holder.SessionState
    if getattr(base, "lazy_configs", False):
        return True
    if not hasattr(base, "_update_value_in_config") or "config_values" in vars(base):
        return False

    class _NoBlocks:  # what the stock constructor sees: the app's config, but no blocks to configure now
        def __init__(self, blocks):
            self.default_config, self.blocks = blocks.default_config, {}

    class LazySessionState(base):
        lazy_configs = True

        def __init__(self, blocks):
            super().__init__(_NoBlocks(blocks))
            self.config_values = _LazyConfigs(self, [k for k in self.blocks_config.blocks if k in blocks.blocks])

        def _update_value_in_config(self, key, value):  # every event records its inputs' and outputs' values
            configs = self.config_values
            with configs._lock:
                if key in configs._pending:  # not built yet: keep the value, set it when the entry is built
                    configs._values[key] = value
                    return
            super()._update_value_in_config(key, value)

    import importlib

    for module in ("gradio.state_holder", "gradio.route_utils", "gradio.blocks", "gradio.mcp"):
        try:  # every module that bound the name at import (mcp only where its extra is installed)
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if getattr(mod, "SessionState", None) is base:
            mod.SessionState = LazySessionState
    return True
