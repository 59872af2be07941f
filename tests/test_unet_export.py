"""The diffusion models' eps networks in ONNX (explorer/export.py, build_unet): onnxruntime agrees with torch
per eps call on every shipped diffusion model, guidance formed from one [labels, null] batch is the model's own,
the file records its weights and sampling settings, and a retrained checkpoint gets a new file.

Each shipped network is exported once per module into the session's temporary user cache (conftest)."""
import hashlib
import shutil

import numpy as np
import pytest
import torch

from explorer import export
from explorer.checkpoints import WEIGHTS, Zoo

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ZOO = Zoo()
NAMES = [n for n in ZOO.available() if export.unet_exportable(ZOO, n)]
TOL = 1e-4


def test_every_shipped_diffusion_model_is_exportable():
    assert set(NAMES) >= {"fashion-mnist/ddpm-cosine", "fashion-mnist/ddpm-linear", "fashion-mnist/ldm-vae-16",
                          "fashion-mnist/ldm-dae-16", "fashion-mnist/ldm-dae-16-joint", "faces/ldm-vae-64"}
    assert not export.unet_exportable(ZOO, "fashion-mnist/vae-16")
    with pytest.raises(export.NotExportable, match="not a diffusion model"):
        export.build_unet(ZOO, "fashion-mnist/vae-16")


@pytest.fixture(scope="module")
def built():
    """{name: (path, onnxruntime session, torch model in float32)}."""
    out = {}
    for n in NAMES:
        path = export.build_unet(ZOO, n)
        model = ZOO.load(n, device="cpu")
        model.precision = "float32"
        out[n] = (path, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), model)
    return out


def _eps(session, x, t, y) -> np.ndarray:
    return session.run(["eps"], {"x_t": x.numpy(), "t": t.numpy(), "y": y.numpy()})[0]


@pytest.mark.slow  # exports six networks (~15 s on 2 cores); README, "Test it"
@pytest.mark.parametrize("name", NAMES)
def test_each_eps_call_matches_torch_on_random_inputs(built, name):
    _, session, model = built[name]
    for n, seed in ((1, 1), (7, 2), (32, 3)):  # the batch axis is dynamic
        x, t, y = export.unet_check_inputs(model, n, seed)
        x = x * (1 + seed)  # x_t wider than N(0, I) too
        got = _eps(session, x, t, y)
        with torch.no_grad():
            want = model.net.float()(x, t, y).numpy()
        assert got.shape == (n, *model.sample_shape) and got.dtype == np.float32
        assert np.abs(got - want).max() <= TOL, name


@pytest.mark.slow  # exports six networks (~15 s on 2 cores); README, "Test it"
@pytest.mark.parametrize("name", ["fashion-mnist/ddpm-cosine", "fashion-mnist/ldm-vae-16"])
def test_guided_eps_from_one_labels_and_null_batch_is_the_models(built, name):
    """The page's guidance: run [x, x] with [labels, null] once, then eps_u + w (eps_c - eps_u)."""
    _, session, model = built[name]
    x, t, _ = export.unet_check_inputs(model, 4, 5)
    labels = torch.tensor([0, 3, 7, 9])
    null = torch.full_like(labels, int(export.metadata(built[name][0])["null_label"]))
    assert int(null[0]) == model.null_label
    for w in (0.0, 1.0, 3.0):
        fn = model.eps_fn(labels, w)
        step = int(t[0])
        both = _eps(session, torch.cat([x, x]), torch.full((8,), step), torch.cat([labels, null]))
        cond, uncond = both[:4], both[4:]
        got = uncond + w * (cond - uncond)  # (Ho & Salimans 2021, Eq. 6, w = their 1 + w)
        assert np.abs(got - fn(x, step).numpy()).max() <= 3 * TOL


@pytest.mark.slow  # exports six networks (~15 s on 2 cores); README, "Test it"
@pytest.mark.parametrize("name", NAMES)
def test_file_records_its_weights_and_sampling_settings(built, name):
    path, session, model = built[name]
    meta = export.metadata(path)
    sha = hashlib.sha256((ZOO.path(name) / WEIGHTS).read_bytes()).hexdigest()
    assert meta["weights_sha256"] == sha and path.name.endswith(f"-{sha[:16]}.unet.onnx")
    assert meta["checkpoint"] == name and float(meta["max_abs_diff"]) <= TOL
    c = model.config
    assert (meta["schedule"], int(meta["timesteps"]), meta["space"]) == (c.schedule, c.timesteps, c.space)
    assert int(meta["null_label"]) == model.null_label == int(meta["classes"])
    assert float(meta["clip_x0"]) == model.clip and meta["spacing"] == c.sampling_spacing
    assert meta["decoder"] == (c.vae if c.space == "latent" else "")
    assert [i.name for i in session.get_inputs()] == ["x_t", "t", "y"]
    assert [i.type for i in session.get_inputs()] == ["tensor(float)", "tensor(int64)", "tensor(int64)"]
    assert export.unet_status(ZOO, name) == "ready" and export.unet_cached(ZOO, name) == path
    assert export.status(ZOO, name) == "not exportable"  # it is not a decoder
    # the float16 weights are stored as float16 (export.half_initializers): about 2 bytes per parameter
    assert path.stat().st_size < 2.2 * sum(p.numel() for p in model.net.parameters()) + 400_000


def _change_weights(zoo, name):
    from safetensors.torch import load_file, save_file

    w = zoo.path(name) / WEIGHTS
    state = load_file(str(w))
    key = next(k for k in state if k.startswith("net.") and k.endswith("weight"))
    state[key] = state[key] + 0.01
    save_file(state, str(w))


@pytest.mark.slow  # three exports with their checks; README, "Test it"
def test_a_retrained_model_gets_a_new_file_and_the_stale_one_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    name = "fashion-mnist/ldm-vae-16"
    shutil.copytree(ZOO.path(name), tmp_path / "root" / name, ignore=shutil.ignore_patterns("projections", "*.png"))
    zoo = Zoo(tmp_path / "root")
    assert export.unet_status(zoo, name) == "missing"
    first = export.build_unet(zoo, name)
    assert export.unet_status(zoo, name) == "ready" and export.build_unet(zoo, name) == first  # kept when fresh
    _change_weights(zoo, name)
    assert export.unet_status(zoo, name) == "stale" and export.unet_cached(zoo, name) is None
    second = export.build_unet(zoo, name)
    assert second != first and not first.exists() and export.unet_cached(zoo, name) == second
    assert export.metadata(second)["weights_sha256"] == export.weights_sha256(zoo, name)
    # the network really is the new one
    model = zoo.load(name, device="cpu")
    x, t, y = export.unet_check_inputs(model, 8)
    assert export.unet_max_abs_diff(second, model, x, t, y) <= TOL
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # an export that disagrees is not written
    with pytest.raises(export.ExportError, match="differs from torch"):
        export.build_unet(zoo, name, force=True)
    assert export.unet_cached(zoo, name) == second
