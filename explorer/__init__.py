"""Latent Space Explorer: see and teach how generative models use their latent space.

    from explorer import zoo
    zoo.available()                      # ['fashion-mnist/vae-2d', ...]
    m = zoo.load("fashion-mnist/vae-2d")
    x = m.decode(m.encode(images))

Submodules import lazily, so ``import explorer`` costs nothing.
"""
from pathlib import Path

__version__ = "0.1.0"


def shipped(folder: str, package=None) -> Path:
    """The shipped ``checkpoints/`` or ``assets/`` folder: inside the package (``explorer/_shipped/``) when it
    was installed with pip (pyproject.toml puts them there), else beside it, as in a checkout. ``package``:
    the package's folder (default: this one's)."""
    here = Path(package) if package else Path(__file__).resolve().parent
    installed = here / "_shipped" / folder
    return installed if installed.is_dir() else here.parent / folder


def __getattr__(name):
    if name == "zoo":
        from .checkpoints import zoo
        return zoo
    raise AttributeError(name)
