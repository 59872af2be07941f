"""The autoencoder families by name, apart from the package's full registry: a latent diffusion model rebuilds
the autoencoder stored inside it from here, so models/diffusion.py needs no import of the package itself."""
from __future__ import annotations

from .ae import AE
from .dae import DAE
from .gmm_vae import GMMVAE
from .vae import VAE

AUTOENCODERS = {"ae": AE, "vae": VAE, "gmm-vae": GMMVAE, "dae": DAE}


def build_family(families: dict, family: str, config: dict):
    """Rebuild a model of ``families`` from its family name and config dict (as stored in a checkpoint)."""
    if family not in families:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(families)}")
    cls = families[family]
    return cls(cls.Config(**config))


def build_autoencoder(family: str, config: dict):
    return build_family(AUTOENCODERS, family, config)
