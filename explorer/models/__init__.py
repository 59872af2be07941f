"""One module per model family; each has a config dataclass and is rebuilt from it alone."""
from .ae import AE, AEConfig
from .classifier import Classifier, ClassifierConfig
from .dae import DAE, DAEConfig
from .diffusion import DDPM, DDPMConfig
from .gan import GAN, GANConfig
from .gmm_vae import GMMVAE, GMMVAEConfig
from .vae import VAE, VAEConfig

from .registry import AUTOENCODERS, build_family

FAMILIES = {**AUTOENCODERS, "gan": GAN, "classifier": Classifier, "ddpm": DDPM}


def build(family: str, config: dict):
    """Rebuild a model from its family name and config dict (as stored in a checkpoint)."""
    return build_family(FAMILIES, family, config)


__all__ = ["AE", "AEConfig", "VAE", "VAEConfig", "GMMVAE", "GMMVAEConfig", "Classifier",
           "ClassifierConfig", "DAE", "DAEConfig", "GAN", "GANConfig", "DDPM", "DDPMConfig", "FAMILIES", "build"]
