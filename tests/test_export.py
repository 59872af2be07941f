"""ONNX decoders (explorer/export.py): onnxruntime agrees with torch on every shipped decoder, the file
records its weights, the batch is dynamic, stale files are recognised, and non-decoders are refused.

Each shipped decoder is exported once per module into the session's temporary user cache (conftest)."""
import hashlib
import shutil
import threading

import numpy as np
import pytest
import torch

from explorer import data, export
from explorer.checkpoints import WEIGHTS, Zoo

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

ZOO = Zoo()
NAMES = [n for n in ZOO.available() if export.exportable(ZOO, n)]
ENCODERS = [n for n in NAMES if ZOO.info(n)["family"] != "gan"]
TOL = 1e-4


def test_every_decoding_family_is_exported():
    families = {ZOO.info(n)["family"] for n in NAMES}
    assert families == set(export.EXPORTABLE_FAMILIES)
    assert len(NAMES) >= 9  # ae, dae x2, dcgan, gmm-vae, vae-16, vae-16-patchgan, vae-2d x2


@pytest.fixture(scope="module")
def built():
    """{name: (path, onnxruntime session, torch model)} for every shipped decoder, built once."""
    paths = export.build_all(ZOO, NAMES)
    return {n: (p, ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]), ZOO.load(n, device="cpu"))
            for n, p in paths.items()}


def _run(session, z: torch.Tensor) -> np.ndarray:
    return session.run(["x"], {"z": z.numpy()})[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_matches_torch_on_random_codes(built, name):
    _, session, model = built[name]
    z = 3 * torch.randn(256, model.latent_dim, generator=torch.Generator().manual_seed(1))
    got, want = _run(session, z), model.decode(z).numpy()
    assert got.dtype == np.float32 and got.shape == (256, *model.image_shape)
    assert 0.0 <= got.min() and got.max() <= 1.0
    assert np.abs(got - want).max() <= TOL


@pytest.mark.parametrize("name", ENCODERS)
def test_onnxruntime_matches_torch_on_test_image_codes(built, name):
    _, session, model = built[name]
    x = data.load_assets(ZOO.info(name)["dataset"]).floats()[:64]
    z = model.encode(x)
    assert np.abs(_run(session, z) - model.decode(z).numpy()).max() <= TOL


@pytest.mark.parametrize("name", NAMES)
def test_file_records_its_weights_and_interface(built, name):
    path, session, model = built[name]
    meta = export.metadata(path)
    sha = hashlib.sha256((ZOO.path(name) / WEIGHTS).read_bytes()).hexdigest()
    assert meta["weights_sha256"] == sha == export.weights_sha256(ZOO, name)
    assert path.name.endswith(f"-{sha[:16]}.onnx") and path.parent.name == ZOO.info(name)["dataset"]
    assert meta["checkpoint"] == name and int(meta["latent_dim"]) == model.latent_dim
    assert meta["opset"] == "17" and "dynamo=False" in meta["exporter"]
    assert float(meta["max_abs_diff"]) <= TOL
    (i,), (o,) = session.get_inputs(), session.get_outputs()
    assert (i.name, i.type, i.shape[1]) == ("z", "tensor(float)", model.latent_dim)
    assert (o.name, o.type, o.shape[1:]) == ("x", "tensor(float)", list(model.image_shape))
    assert meta["image_shape"] == ",".join(map(str, model.image_shape))
    assert isinstance(i.shape[0], str) and isinstance(o.shape[0], str)  # a named, dynamic batch axis
    assert export.status(ZOO, name) == "ready" and export.cached(ZOO, name) == path


@pytest.mark.parametrize("name", NAMES[:1] + [n for n in NAMES if ZOO.info(n)["family"] == "gan"][:1])
def test_batch_dimension_is_dynamic(built, name):
    _, session, model = built[name]
    for n in (1, 400):
        z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(n))
        got = _run(session, z)
        assert got.shape == (n, *model.image_shape)
        assert np.abs(got - model.decode(z).numpy()).max() <= TOL


@pytest.mark.parametrize("name", ["fashion-mnist/classifier", "mnist-5k/classifier", "fashion-mnist/ddpm-cosine",
                                  "fashion-mnist/ldm-vae-16"])
def test_non_decoders_are_refused(name):
    assert not export.exportable(ZOO, name)
    assert export.status(ZOO, name) == "not exportable" and export.cached(ZOO, name) is None
    with pytest.raises(export.NotExportable, match=f"{name} is .* not exported to ONNX"):
        export.build(ZOO, name)
    assert name not in export.build_all(ZOO, [name])


@pytest.fixture
def own_copy(tmp_path, monkeypatch):
    """A copy of the shipped mnist-5k/vae-2d in its own root, with its own empty ONNX cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = ZOO.path("mnist-5k/vae-2d")
    shutil.copytree(src, tmp_path / "root" / "mnist-5k" / "vae-2d", ignore=shutil.ignore_patterns("projections"))
    return Zoo(tmp_path / "root"), "mnist-5k/vae-2d"


def _change_weights(zoo, name):
    from safetensors.torch import load_file, save_file

    w = zoo.path(name) / WEIGHTS
    state = load_file(str(w))
    key = next(k for k in state if k.startswith("decoder."))
    state[key] = state[key] + 0.01
    save_file(state, str(w))


def test_stale_file_is_detected_and_replaced(own_copy):
    zoo, name = own_copy
    assert export.status(zoo, name) == "missing" and export.cached(zoo, name) is None
    first = export.build(zoo, name)
    assert str(first).startswith(str(export.cache_dir())) and export.status(zoo, name) == "ready"
    old_sha = export.weights_sha256(zoo, name)
    _change_weights(zoo, name)                       # retrained, or edited
    assert export.weights_sha256(zoo, name) != old_sha
    assert export.status(zoo, name) == "stale" and export.cached(zoo, name) is None
    assert export.metadata(first)["weights_sha256"] == old_sha
    second = export.build(zoo, name)
    assert second != first and not first.exists()    # one file per checkpoint: the stale one is gone
    assert export.status(zoo, name) == "ready" and export.cached(zoo, name) == second
    # a file under the right name that records other weights (damaged, or copied over) is stale too
    second.write_bytes(b"not an onnx file")
    assert export.status(zoo, name) == "stale" and export.cached(zoo, name) is None


def test_concurrent_builds_export_once(own_copy, monkeypatch):
    zoo, name = own_copy
    calls = []
    real = export._export_bytes
    monkeypatch.setattr(export, "_export_bytes", lambda m: calls.append(1) or real(m))
    out = []
    threads = [threading.Thread(target=lambda: out.append(export.build(zoo, name, check=False))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(out)) == 1 and len(out) == 3
    assert list(out[0].parent.iterdir()) == [out[0]]  # no temporary file left behind
    assert export.metadata(out[0])["max_abs_diff"] == "unchecked"


def test_a_decoder_that_disagrees_is_not_written(own_copy, monkeypatch):
    zoo, name = own_copy
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(export.ExportError, match="differs from torch"):
        export.build(zoo, name)
    assert export.status(zoo, name) == "missing"
    assert not [p for p in export.cache_dir().rglob("*") if p.is_file()]  # no temporary file either


def test_cli_builds_and_checks(own_copy, capsys):
    zoo, name = own_copy
    root = str(zoo.root)
    assert export.main(["--checkpoints", root, "--check-only"]) == 1
    assert "missing" in capsys.readouterr().out
    assert export.main(["--checkpoints", root]) == 0
    out = capsys.readouterr().out
    assert name in out and "ready" in out and "max |ort - torch|" in out
    assert export.main(["--checkpoints", root, "--check-only", name]) == 0
    _change_weights(zoo, name)
    assert export.main(["--checkpoints", root, "--check-only"]) == 1
    assert "stale" in capsys.readouterr().out
