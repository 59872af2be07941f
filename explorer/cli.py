"""Latent Space Explorer: parse flags, build the app, launch it.

    latent-space-explorer               # http://127.0.0.1:7860, shipped checkpoints (or: python app.py)
    latent-space-explorer --host 0.0.0.0 --port 8000 --checkpoints my_checkpoints/
"""
from __future__ import annotations

import argparse
import os
import threading


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="also open a public Gradio share link (off by default)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--checkpoints", default=None, help="checkpoint folder (default: the shipped checkpoints/)")
    p.add_argument("--auth", type=_credentials, default=os.environ.get("EXPLORER_AUTH") or None,
                   metavar="USER:PASSWORD", help="ask for this login before serving the app (for a classroom "
                   "server; default: $EXPLORER_AUTH if set, else no login)")
    args = p.parse_args(argv)
    if isinstance(args.auth, str):  # from the environment
        try:
            args.auth = _credentials(args.auth)
        except argparse.ArgumentTypeError as err:
            p.error(f"EXPLORER_AUTH: {err}")
    return args


def _credentials(text: str) -> tuple[str, str]:
    """'user:password' -> (user, password); both must be non-empty."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("--auth takes USER:PASSWORD, both non-empty")
    return user, password


def create(checkpoints=None, device="auto"):
    """Build the app (not launched) over a checkpoint folder; returns (demo, store)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import torch

    from .checkpoints import Zoo
    from .ui import Store, build_app

    # Inference here is one small decode per request: one thread each, and as many requests in
    # parallel as there are cores, beats several requests fighting over all cores.
    torch.set_num_threads(1)
    store = Store(Zoo(checkpoints), device=None if device == "auto" else device)
    demo = build_app(store)
    # max_size: room for a lecture hall (100-200 tabs, each with an event or two waiting) before anyone is
    # told the queue is full. api_open=False: a queued event (a diffusion run, an encode) cannot skip the
    # queue through a direct POST to /gradio_api/run/<name>; only unqueued cheap endpoints (/decode) answer there.
    demo.queue(default_concurrency_limit=os.cpu_count() or 2, max_size=256, api_open=False)
    return demo, store


def warm(store, demo=None):
    """Encode the default model's test set (and let each panel prepare its default view, e.g. the
    projection map and thumbnails) before the first visitor asks."""
    def run():
        try:
            names = store.encoder_models()
            if names:
                store.view(names[0])
                store.decoders.warm(names[:1])  # the first page's in-page decoder first
        except Exception as err:  # a broken checkpoint is reported by the panel itself
            print(f"warm-up skipped: {err}")
        for panel in getattr(demo, "panels", {}).values():
            try:
                panel.warm()
            except Exception as err:
                print(f"warm-up of {type(panel).__name__} skipped: {err}")
        # then every other model's in-page (ONNX) decoder, built once into the user cache, keyed by its weights
        store.decoders.warm(store.zoo.available())
    threading.Thread(target=run, daemon=True).start()


def launch_kwargs(args, demo=None):
    import gradio as gr

    from .ui import CSS, head
    # Gradio keeps a copy of every block's config per session (~0.4 MB here), and a client that calls
    # /gradio_api/call/<name> without a session hash starts a new session each call: at the default
    # capacity (10,000) a scripted loop could hold ~4 GB. 512 sessions covers a lecture hall with room.
    return dict(server_name=args.host, server_port=args.port, share=args.share, max_file_size="10mb",
                enable_monitoring=False, show_error=True, theme=gr.themes.Soft(), css=CSS, head=head(),
                auth=getattr(args, "auth", None), state_session_capacity=512,
                # the app's plain routes (GET /api/decode.png), matched before Gradio's own
                app_kwargs={"routes": list(getattr(demo, "routes", []))})


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas. Gradio serves requests from a pool of threads and glibc gives each
    thread its own arena, so a classroom's worth of requests grew the server by ~370 MB in the load test
    (94 MB with two arenas, levelling off). The same as MALLOC_ARENA_MAX=2; a no-op off glibc."""
    import ctypes
    import ctypes.util

    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # the user's own setting wins
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-8, arenas))  # M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def main(argv=None):
    args = parse_args(argv)
    limit_malloc_arenas()
    demo, store = create(args.checkpoints, args.device)
    warm(store, demo)
    demo.launch(**launch_kwargs(args, demo))


if __name__ == "__main__":
    main()
