"""Shared fixtures: tiny checkpoints trained on scikit-learn's digits (seconds, no dataset needed)."""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Projections computed by tests go to a temporary user cache, not ~/.cache. The generated face set
    (explorer/faces.py, ~3.5 min to build on 2 cores) is the exception: when the user cache already holds it,
    the tests read that copy (the files are written atomically and never modified), else they build it once."""
    from pathlib import Path

    old = os.environ.get("XDG_CACHE_HOME")
    real = Path(old or Path.home() / ".cache") / "latent-space-explorer" / "faces"
    tmp = tmp_path_factory.mktemp("cache")
    os.environ["XDG_CACHE_HOME"] = str(tmp)
    if real.is_dir():
        (tmp / "latent-space-explorer").mkdir(parents=True, exist_ok=True)
        (tmp / "latent-space-explorer" / "faces").symlink_to(real, target_is_directory=True)
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old

# Session fixtures that train models (tens of seconds each): every test that uses one is marked slow, so
# `pytest -m "not browser and not slow"` is a quick loop without them (README, "Test it").
TRAINING_FIXTURES = {"tiny_zoo", "dae_study_dir", "dae_zoo", "gamix_runs", "tiny_vae_root", "squares_zoo"}


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A checkpoint folder with digits/{classifier, vae-2d, ae-16, gmm-vae-16}, each trained briefly."""
    import torch

    from explorer import training

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("ckpt")
    small = {"channels": 8, "hidden": 64}
    training.train("classifier", "digits", epochs=2, out=root, limit=600, progress=False,
                   config={"channels": 8, "features": 32})
    # beta < 1 keeps these few steps from collapsing the posterior (a decoder that ignores z)
    training.train("vae-2d", "digits", epochs=5, out=root, progress=False, config={**small, "beta": 0.2})
    training.train("ae-16", "digits", epochs=4, out=root, progress=False, config=small, evaluate=False)
    training.train("gmm-vae-16", "digits", epochs=2, out=root, limit=600, progress=False, config=small,
                   evaluate=False)
    return root


def rand_images(n=32, seed=0):
    """n seeded uniform-noise images (n, 1, 28, 28) in [0, 1]."""
    import torch

    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def params_of(module) -> dict:
    """A detached copy of a module's parameters by name, to compare after a step."""
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def changed(before: dict, module) -> set:
    """Names of the parameters of ``module`` that differ from the copy ``before``."""
    import torch

    return {k for k, p in module.named_parameters() if not torch.equal(before[k], p.detach())}


def randomised(model, seed=0, std=0.05):
    """Perturb every parameter of ``model`` (zero-initialised layers included) with seeded noise; eval mode."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


DAE_SMALL = {"channels": 8, "hidden": 64, "aux_channels": 2, "aux_hidden": 16}


def tiny_dae_study():
    """explorer.studies.DAE on digits: two seeds, 2 epochs per autoencoder, 1 for latent diffusion."""
    import dataclasses

    from explorer import studies

    return dataclasses.replace(studies.DAE, dataset="digits", seeds=(0, 1),
                               arms=tuple(dataclasses.replace(a, epochs=2, ldm_epochs=1) for a in studies.DAE.arms))


@pytest.fixture(scope="session")
def dae_study_dir(tmp_path_factory):
    """A two-seed DAE-vs-joint study on digits (2 epochs each, latent diffusion 1 epoch): seconds."""
    from explorer import studies

    out = tmp_path_factory.mktemp("dae-study")
    studies.run(tiny_dae_study(), out, progress=False, limit=200, config=DAE_SMALL)
    return out


@pytest.fixture(scope="session")
def dae_zoo(dae_study_dir, tmp_path_factory):
    """The study's first seed shipped into a checkpoint folder (cards carry the table)."""
    from explorer import studies

    root = tmp_path_factory.mktemp("dae-zoo")
    studies.ship(studies.summarise(tiny_dae_study(), dae_study_dir), root=root, out=dae_study_dir)
    return root


def assert_no_server_decode(requests):
    """A page's traffic, as (method, url, post body) triples, held no decode: only queue events, static
    files and component-server calls that fetch a decoder (onnx_bytes, decoder_spec), never decode_codes."""
    assert all("/queue/" in u or "/static/" in u or "/component_server" in u for _, u, _ in requests), requests
    assert not any("decode_codes" in body for _, u, body in requests if "/component_server" in u), requests


@contextmanager
def launched_app(checkpoints, *flags):
    """The real app over a checkpoint folder, launched as app.py does (with its command-line ``flags``, e.g.
    "--auth", "user:password") on a free loopback port: yields (url, demo, store) and closes the server afterwards."""
    import app as app_module

    demo, store = app_module.create(str(checkpoints))
    store.decoders.warm(store.zoo.available())  # the in-page (ONNX) decoders, as the app's warm-up builds them
    args = app_module.parse_args(["--port", str(free_port()), *flags])
    demo.launch(prevent_thread_lock=True, quiet=True, **app_module.launch_kwargs(args, demo))
    try:
        yield f"http://127.0.0.1:{args.port}/", demo, store
    finally:
        demo.close()


@pytest.fixture(scope="session")
def served_app(tiny_zoo):
    """The real app over the tiny checkpoints."""
    with launched_app(tiny_zoo) as served:
        yield served
