"""Latent Space Explorer from a checkout: the same command as the installed ``latent-space-explorer``.

    python app.py                       # http://127.0.0.1:7860, shipped checkpoints
    python app.py --host 0.0.0.0 --port 8000 --checkpoints my_checkpoints/
"""
from explorer.cli import create, launch_kwargs, limit_malloc_arenas, main, parse_args, warm

__all__ = ["create", "launch_kwargs", "limit_malloc_arenas", "main", "parse_args", "warm"]

if __name__ == "__main__":
    main()
