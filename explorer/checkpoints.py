"""Save and load checkpoints in safe formats, and the model registry ("zoo").

A checkpoint is a folder ``<root>/<dataset>/<preset>/`` holding

    model.safetensors   the weights (tensors only: loading runs no pickled code); parameters in
                        float16 except the classifiers' (SHIP_DTYPE), buffers in float32
    config.json         family, config dataclass fields, dataset, the command that rebuilds it
    metrics.json        test metrics written by the training CLI
    README.md           the model card

    >>> from explorer import zoo
    >>> zoo.available()
    ['fashion-mnist/ae-16', 'fashion-mnist/classifier', ...]
    >>> m = zoo.load("fashion-mnist/vae-2d")

    python -m explorer.checkpoints halve [NAME ...]    # store parameters in their SHIP_DTYPE
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import models, shipped

ROOT = shipped("checkpoints")
WEIGHTS, CONFIG, METRICS, CARD = "model.safetensors", "config.json", "metrics.json", "README.md"
AGGREGATE_PRIOR = "aggregate_prior.json"  # a VAE's fitted aggregate posterior (latents.AggregatePrior), optional


def short_name(name: str) -> str:
    """A checkpoint's name without its dataset: "fashion-mnist/vae-2d" -> "vae-2d" (a name without one: itself)."""
    return name.split("/", 1)[-1]


def _no_paths(err: Exception) -> str:
    """An error's text without absolute paths: CheckpointError messages are shown to users, and the
    checkpoint's name already says which folder is meant."""
    import re

    text = re.sub(r"'?(?:/[^\s'\":]+)+'?", "(path)", str(err).strip())
    return text or type(err).__name__


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or does not match its config. The message says how to rebuild it."""


def rebuild_command(name: str) -> str:
    dataset, _, preset = name.partition("/")
    return f"python -m explorer.training {preset} --dataset {dataset}"


# The dtype a family's parameters are stored in. float16 halves the repository (decodes of test-image
# codes move by < 2e-3 per pixel, test MSE by < 1e-6); the classifiers stay float32 so classifier-FID,
# the yardstick every model is scored with, does not move. Buffers (BatchNorm statistics, fitted priors,
# code standardisation) are always float32: they are small and some are sums of many terms.
SHIP_DTYPE = {"classifier": torch.float32}


def ship_dtype(family: str) -> torch.dtype:
    """The dtype ``family``'s parameters are shipped in (float16 unless SHIP_DTYPE says otherwise)."""
    return SHIP_DTYPE.get(family, torch.float16)


@torch.no_grad()
def round_params(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Round the floating parameters of ``model`` to ``dtype``'s precision in place (they keep their own
    dtype), so a model evaluated in memory is the one ``save(..., dtype=dtype)`` writes; returns it."""
    for p in model.parameters():
        if p.is_floating_point():
            p.copy_(p.to(dtype))
    return model


def _write_weights(model: torch.nn.Module, directory: Path, dtype: torch.dtype | None, skip: str = "") -> Path:
    from safetensors.torch import save_file

    params = {k for k, p in model.named_parameters() if p.is_floating_point()}
    state = {k: (v.to(dtype) if dtype is not None and k in params else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}
    tmp = directory / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, directory / WEIGHTS)  # never leave a half-written weights file under the real name
    return directory / WEIGHTS


def save(model: torch.nn.Module, directory: str | os.PathLike, family: str, meta: dict,
         dtype: torch.dtype | None = None) -> Path:
    """Write weights (safetensors) and config.json into ``directory``; returns it.

    ``dtype`` (e.g. ``torch.float16``, see :func:`ship_dtype`) is the dtype the floating parameters are
    stored in; buffers keep theirs. None stores everything as the model holds it. Loading casts back
    to the model's dtype."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ref = meta.get("vae_weights")  # a latent diffusion model whose autoencoder's weights stay in its own checkpoint
    _write_weights(model, directory, dtype, skip="vae." if ref else "")
    config = {"family": family, "config": model.config_dict(), **meta}
    (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_config(directory: str | os.PathLike, name: str | None = None) -> dict:
    directory = Path(directory)
    name = name or f"{directory.parent.name}/{directory.name}"
    path = directory / CONFIG
    if not path.is_file():
        raise CheckpointError(f"checkpoint {name!r}: its {CONFIG} is missing. "
                              f"Rebuild it with `{rebuild_command(name)}`.")
    try:
        config = json.loads(path.read_text())
        config["family"], config["config"]
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {name!r}: its {CONFIG} is damaged ({_no_paths(err)}). "
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
        raise CheckpointError(f"checkpoint {name!r}: its weights ({WEIGHTS}) are missing. {rebuild}")
    try:
        model = models.build(config["family"], config["config"])
        state = load_file(str(weights))
        if config.get("vae_weights"):
            state.update(_referenced_vae(directory, name, config["vae_weights"], rebuild))
        # parameters may be stored in float16 (SHIP_DTYPE): cast every floating tensor to the dtype the
        # model holds it in (float32) rather than rely on load_state_dict's implicit copy
        own = model.state_dict()
        state = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() and own[k].is_floating_point() else v
                 for k, v in state.items()}
        model.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError, ValueError, TypeError) as err:
        first = _no_paths(err).splitlines()[0][:300]
        raise CheckpointError(f"checkpoint {name!r} is damaged or does not match its config "
                              f"({type(err).__name__}: {first}). {rebuild}") from err
    model.eval()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device)


@dataclass(frozen=True)
class Handle:
    """One checkpoint as read from its config.json, once: where it is, its family, config and dataset, what
    the family can do, and (computed when first asked, then remembered) the SHA-256 of its weights."""

    name: str
    path: Path
    family: str
    config: dict
    dataset: str
    meta: dict
    caps: "models.Capabilities"

    @property
    def image_shape(self) -> tuple:
        cfg = self.config
        if cfg.get("space") == "latent":
            cfg = cfg.get("vae_config", {})
        return tuple(int(v) for v in cfg.get("image_shape", (1, 28, 28)))

    @property
    def label(self) -> str:
        return self.caps.label

    @property
    def sha256(self) -> str:
        return weights_sha256(self.path / WEIGHTS)


_memo_lock = threading.Lock()
_sha_memo: dict[tuple, str] = {}
_handle_memo: dict[tuple, Handle] = {}


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a weights file, remembered per (path, inode, mtime, size)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)
    with _memo_lock:
        if key in _sha_memo:
            return _sha_memo[key]
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    with _memo_lock:
        _sha_memo[key] = digest
    return digest


def _referenced_vae(directory: Path, name: str, ref: dict, rebuild: str) -> dict:
    """The "vae." weights of a latent diffusion model stored by reference: read from the autoencoder's own
    checkpoint in the same root, which must be byte-for-byte the one the model was trained on (its SHA-256)."""
    from safetensors.torch import load_file

    vae_dir = directory.parent.parent / ref["name"]
    path = vae_dir / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"checkpoint {name!r} models the codes of {ref['name']!r}, whose weights are missing. "
                              f"Rebuild {ref['name']!r} first, then {name!r}: {rebuild}")
    if weights_sha256(path) != ref["sha256"]:
        raise CheckpointError(f"checkpoint {name!r} models the codes of {ref['name']!r}, which has changed since "
                              f"(its weights' SHA-256 differs): the codes no longer match. {rebuild}")
    return {f"vae.{k}": v for k, v in load_file(str(path)).items()}


class Zoo:
    """The registry of trained checkpoints under one root folder."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root or os.environ.get("EXPLORER_CHECKPOINTS") or ROOT)

    def handle(self, name: str) -> Handle:
        """The checkpoint's :class:`Handle`, read from config.json once per version of that file."""
        directory = self.path(name)
        try:
            st = (directory / CONFIG).stat()
            key = (str(directory.resolve()), st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        with _memo_lock:
            if key in _handle_memo:
                return _handle_memo[key]
        info = read_config(directory, name)
        try:
            caps = models.capabilities(info["family"], info["config"])
        except ValueError as err:
            raise CheckpointError(f"checkpoint {name!r}: {err}. Rebuild it with `{rebuild_command(name)}`.") from err
        h = Handle(name, directory, info["family"], info["config"], info.get("dataset") or directory.parent.name,
                   {k: v for k, v in info.items() if k not in ("family", "config")}, caps)
        if key is not None:
            with _memo_lock:
                _handle_memo[key] = h
        return h

    def with_capability(self, what: str) -> list[str]:
        """Names of the checkpoints whose family can ``what`` ("has_encoder", "exports_decoder", "generates",
        "is_variational"), sorted; damaged ones are left out."""
        out = []
        for n in self.available():
            try:
                if getattr(self.handle(n).caps, what):
                    out.append(n)
            except CheckpointError:
                pass
        return out

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
            if family is None or self._family(name) == family:
                names.append(name)
        return names

    def _family(self, name: str) -> str | None:
        try:
            return self.handle(name).family
        except (CheckpointError, ValueError):
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

    def aggregate_prior(self, name: str):
        """The checkpoint's fitted aggregate posterior (:class:`explorer.latents.AggregatePrior`), or None when
        it has none; CheckpointError, naming the command that rebuilds it, when its file is damaged."""
        from .latents import AggregatePrior

        path = self.path(name) / AGGREGATE_PRIOR
        if not path.is_file():
            return None
        try:
            latent_dim = read_config(self.path(name), name)["config"].get("latent_dim")
            return AggregatePrior.from_dict(json.loads(path.read_text()), latent_dim)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"checkpoint {name!r}: its {AGGREGATE_PRIOR} is damaged ({type(err).__name__}). "
                                  "Rebuild it with `python -m explorer.studies sampling --ship`.") from err


zoo = Zoo()


_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}


def stored_dtypes(directory: str | os.PathLike) -> dict[str, torch.dtype | str]:
    """{tensor name: dtype} as stored in a checkpoint's weights file, from the safetensors header alone
    (8 bytes little-endian length, then JSON); non-float dtypes stay safetensors' names ("I64")."""
    with open(Path(directory) / WEIGHTS, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return {k: _DTYPES.get(v["dtype"], v["dtype"]) for k, v in header.items() if k != "__metadata__"}


def _drift(before: torch.nn.Module, after: torch.nn.Module, dataset: str) -> dict:
    """Max |pixel difference| between two versions of a model's decoder: on 256 codes from 3 N(0, I)
    and on the codes (encoded by ``before``) of the first 1,000 shipped test images. {} if it has none
    (pixel diffusion, classifiers); a latent diffusion model is measured through its autoencoder."""
    from . import data

    before, after = getattr(before, "vae", before), getattr(after, "vae", after)
    if not hasattr(before, "decode") or not hasattr(before, "latent_dim"):
        return {}
    z = 3 * torch.randn(256, before.latent_dim, generator=torch.Generator().manual_seed(0))
    out = {"random": float((before.decode(z) - after.decode(z)).abs().max())}
    if before.has_encoder:
        z = before.encode(data.load_assets(dataset).floats()[:1000])
        out["test codes"] = float((before.decode(z) - after.decode(z)).abs().max())
    return out


def halve(zoo: "Zoo", names=None, report=print) -> dict[str, dict]:
    """Rewrite checkpoints' weights with their parameters in :func:`ship_dtype` (float16, classifiers
    float32); config, metrics and card stay. ``names``: default every checkpoint of ``zoo``. Returns
    {name: {"bytes_before", "bytes_after", "dtype", "drift"}}, drift being :func:`_drift`'s max pixel
    differences of the decodes; a checkpoint already stored so is left untouched (no drift entry)."""
    out = {}
    for name in names or zoo.available():
        info, directory = zoo.info(name), zoo.path(name)
        dtype = ship_dtype(info["family"])
        before = zoo.load(name, device="cpu")
        params = {k for k, p in before.named_parameters() if p.is_floating_point()}
        stored = stored_dtypes(directory)
        size = (directory / WEIGHTS).stat().st_size
        row = {"bytes_before": size, "bytes_after": size, "dtype": str(dtype).removeprefix("torch.")}
        if any(stored[k] != dtype for k in params):
            t0 = time.perf_counter()
            _write_weights(before, directory, dtype)
            row["bytes_after"] = (directory / WEIGHTS).stat().st_size
            row["drift"] = _drift(before, zoo.load(name, device="cpu"), info["dataset"])
            row["seconds"] = round(time.perf_counter() - t0, 2)
        out[name] = row
        if report:
            drift = ", ".join(f"{k} {v:.2e}" for k, v in row.get("drift", {}).items())
            report(f"{name:34s} {row['dtype']:8s} {row['bytes_before'] / 1e6:5.2f} -> {row['bytes_after'] / 1e6:5.2f} MB"
                   + (f"  max |decode change| {drift}" if drift else "")
                   + ("" if "drift" in row else "  (already stored so)"))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m explorer.checkpoints", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("halve", help="store parameters in their ship dtype (float16; classifiers float32)")
    h.add_argument("names", nargs="*", help="checkpoints (default: all)")
    h.add_argument("--checkpoints", help="checkpoint root (default: the shipped checkpoints/)")
    a = p.parse_args(argv)
    halve(Zoo(a.checkpoints), a.names or None)


if __name__ == "__main__":
    main()
