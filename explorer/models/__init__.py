"""One module per model family; each has a config dataclass and is rebuilt from it alone."""
from dataclasses import dataclass

from .ae import AE, AEConfig
from .classifier import Classifier, ClassifierConfig
from .dae import DAE, DAEConfig
from .diffusion import DDPM, DDPMConfig
from .gan import GAN, GANConfig
from .gmm_vae import GMMVAE, GMMVAEConfig
from .vae import VAE, VAEConfig

from .registry import AUTOENCODERS, build_family

FAMILIES = {**AUTOENCODERS, "gan": GAN, "classifier": Classifier, "ddpm": DDPM}


@dataclass(frozen=True)
class Capabilities:
    """What a family can do, answered from its name and config alone (no weights are loaded)."""

    family: str
    has_encoder: bool       # encode(x) gives codes
    generates: bool         # sample(n) draws images
    is_variational: bool    # an ELBO and an importance-weighted NLL are defined
    exports_decoder: bool   # decode(z) is exported to ONNX for the page
    label: str              # its name in the UI, e.g. "GAMIX-VAE"


def capabilities(family: str, config: dict | None = None) -> Capabilities:
    """The one lookup the store, zoo, export, zoo table and evaluation ask instead of keeping family lists."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    cls = FAMILIES[family]
    return Capabilities(family, cls.has_encoder, cls.generates, cls.is_variational, cls.exports_decoder,
                        cls.describe(config or {}))


def build(family: str, config: dict):
    """Rebuild a model from its family name and config dict (as stored in a checkpoint)."""
    return build_family(FAMILIES, family, config)


__all__ = ["AE", "AEConfig", "VAE", "VAEConfig", "GMMVAE", "GMMVAEConfig", "Classifier",
           "ClassifierConfig", "DAE", "DAEConfig", "GAN", "GANConfig", "DDPM", "DDPMConfig", "FAMILIES", "build",
           "Capabilities", "capabilities"]
