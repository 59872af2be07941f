"""Latent Space Explorer: see and teach how generative models use their latent space.

    from explorer import zoo
    zoo.available()                      # ['fashion-mnist/vae-2d', ...]
    m = zoo.load("fashion-mnist/vae-2d")
    x = m.decode(m.encode(images))

Submodules import lazily, so ``import explorer`` costs nothing.
"""
__version__ = "0.1.0"


def __getattr__(name):
    if name == "zoo":
        from .checkpoints import zoo
        return zoo
    raise AttributeError(name)
