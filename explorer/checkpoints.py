"""Save and load checkpoints in safe formats, and the model registry ("zoo").

A checkpoint is a folder ``<root>/<dataset>/<preset>/`` holding

    model.safetensors   the weights (tensors only: loading runs no pickled code)
    config.json         family, config dataclass fields, dataset, the command that rebuilds it
    metrics.json        test metrics written by the training CLI
    README.md           the model card

    >>> from explorer import zoo
    >>> zoo.available()
    ['fashion-mnist/ae-16', 'fashion-mnist/classifier', ...]
    >>> m = zoo.load("fashion-mnist/vae-2d")
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from . import models

ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
WEIGHTS, CONFIG, METRICS, CARD = "model.safetensors", "config.json", "metrics.json", "README.md"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or does not match its config. The message says how to rebuild it."""


def rebuild_command(name: str) -> str:
    dataset, _, preset = name.partition("/")
    return f"python -m explorer.training {preset} --dataset {dataset}"


def save(model: torch.nn.Module, directory: str | os.PathLike, family: str, meta: dict) -> Path:
    """Write weights (safetensors) and config.json into ``directory``; returns it."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, directory / WEIGHTS)  # never leave a half-written weights file under the real name
    config = {"family": family, "config": model.config_dict(), **meta}
    (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_config(directory: str | os.PathLike, name: str | None = None) -> dict:
    directory = Path(directory)
    name = name or f"{directory.parent.name}/{directory.name}"
    path = directory / CONFIG
    if not path.is_file():
        raise CheckpointError(f"checkpoint {name!r}: {path} is missing. "
                              f"Rebuild it with `{rebuild_command(name)}`.")
    try:
        config = json.loads(path.read_text())
        config["family"], config["config"]
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {name!r}: {path} is damaged ({err}). "
                              f"Rebuild it with `{rebuild_command(name)}`.") from err
    return config


def load_dir(directory: str | os.PathLike, device: str | torch.device | None = None,
             name: str | None = None) -> torch.nn.Module:
    """Rebuild the model from config.json and load its weights with strict key checking."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    name = name or f"{directory.parent.name}/{directory.name}"
    config = read_config(directory, name)
    rebuild = f"Rebuild it with `{config.get('command') or rebuild_command(name)}`."
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {name!r}: {weights} is missing. {rebuild}")
    try:
        model = models.build(config["family"], config["config"])
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0][:300]
        raise CheckpointError(f"checkpoint {name!r} is damaged or does not match its config "
                              f"({type(err).__name__}: {first}). {rebuild}") from err
    model.eval()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device)


class Zoo:
    """The registry of trained checkpoints under one root folder."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root or os.environ.get("EXPLORER_CHECKPOINTS") or ROOT)

    def path(self, name: str) -> Path:
        dataset, sep, preset = name.partition("/")
        if not sep or not dataset or not preset or ".." in name or name.startswith("/"):
            raise ValueError(f"checkpoint names look like 'fashion-mnist/vae-2d', not {name!r}")
        return self.root / dataset / preset

    def available(self, family: str | None = None) -> list[str]:
        """Names of the checkpoints present (those with a config.json), sorted."""
        names = []
        for cfg in sorted(self.root.glob(f"*/*/{CONFIG}")):
            name = f"{cfg.parent.parent.name}/{cfg.parent.name}"
            if family is None or self._family(cfg) == family:
                names.append(name)
        return names

    @staticmethod
    def _family(cfg: Path) -> str | None:
        try:
            return json.loads(cfg.read_text()).get("family")
        except ValueError:
            return None

    def info(self, name: str) -> dict:
        """config.json plus metrics.json (under "metrics") of a checkpoint, without loading weights."""
        directory = self.path(name)
        info = read_config(directory, name)
        metrics = directory / METRICS
        info["metrics"] = json.loads(metrics.read_text()) if metrics.is_file() else {}
        return info

    def load(self, name: str, device: str | torch.device | None = None) -> torch.nn.Module:
        """The model in eval mode, on CUDA when present unless ``device`` says otherwise."""
        return load_dir(self.path(name), device, name)


zoo = Zoo()
