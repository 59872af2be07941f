import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from explorer import checkpoints, evaluation, models, training, zoo_table
from explorer.checkpoints import CheckpointError, Zoo


def test_save_load_round_trip(tmp_path):
    m = models.build("vae", {"latent_dim": 2, "channels": 8, "hidden": 32}).eval()
    d = checkpoints.save(m, tmp_path / "digits" / "vae-2d", "vae", {"dataset": "digits"})
    assert (d / "model.safetensors").read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    zoo = Zoo(tmp_path)
    assert zoo.available() == ["digits/vae-2d"] and zoo.available("ae") == []
    loaded = zoo.load("digits/vae-2d", device="cpu")
    z = torch.randn(3, 2)
    torch.testing.assert_close(loaded.decode(z), m.decode(z))
    assert zoo.info("digits/vae-2d")["config"]["latent_dim"] == 2


def _saved(tmp_path):
    m = models.build("ae", {"latent_dim": 4, "channels": 8, "hidden": 32})
    checkpoints.save(m, tmp_path / "fashion-mnist" / "ae-16", "ae",
                     {"dataset": "fashion-mnist", "command": "python -m explorer.training ae-16 --dataset fashion-mnist"})
    return Zoo(tmp_path), tmp_path / "fashion-mnist" / "ae-16"


def test_truncated_weights_name_the_rebuild_command(tmp_path):
    zoo, d = _saved(tmp_path)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"fashion-mnist/ae-16.*python -m explorer.training ae-16 --dataset fashion-mnist"):
        zoo.load("fashion-mnist/ae-16")


def test_missing_weights_and_config(tmp_path):
    zoo, d = _saved(tmp_path)
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing.*Rebuild it with"):
        zoo.load("fashion-mnist/ae-16")
    with pytest.raises(CheckpointError, match="python -m explorer.training vae-2d --dataset mnist-5k"):
        zoo.load("mnist-5k/vae-2d")


def test_mismatched_config_is_refused(tmp_path):
    zoo, d = _saved(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["config"]["latent_dim"] = 7
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match its config"):
        zoo.load("fashion-mnist/ae-16")
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged"):
        zoo.load("fashion-mnist/ae-16")


@pytest.mark.parametrize("name", ["../etc", "/etc/passwd", "vae-2d", "a/../../b"])
def test_zoo_rejects_odd_names(tmp_path, name):
    with pytest.raises(ValueError):
        Zoo(tmp_path).load(name)


def test_shipped_checkpoints_have_cards_and_metrics():
    zoo = Zoo()
    names = zoo.available()
    assert set(names) >= {f"{d}/{p}" for d, p in training.SHIPPED}
    for name in names:
        info = zoo.info(name)
        card = (zoo.path(name) / "README.md").read_text()
        assert info["command"] in card and "Wall time" in card
        assert info["metrics"], f"{name} has no metrics.json"


def test_tiny_training_writes_checkpoint_card_and_metrics(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    assert set(zoo.available()) >= {"digits/vae-2d", "digits/ae-16", "digits/gmm-vae-16", "digits/classifier"}
    info = zoo.info("digits/vae-2d")
    assert info["training"]["epochs"] == 5 and info["training"]["train_images"] == 1500
    for key in ("test_mse", "elbo", "iw_nll", "fid", "fid_floor", "fid_n"):
        assert key in info["metrics"], key
    assert info["metrics"]["iw_nll"] <= -info["metrics"]["elbo"]
    assert not (zoo.path("digits/vae-2d") / "resume.pt").exists()
    card = (zoo.path("digits/vae-2d") / "README.md").read_text()
    assert "python -m explorer.training vae-2d --dataset digits" in card


@pytest.mark.slow
def test_loss_decreases_with_training(tmp_path):
    d = training.train("ae-16", "digits", epochs=3, out=tmp_path, limit=512, progress=False, evaluate=False,
                       config={"channels": 8, "hidden": 32})
    hist = json.loads((d / "config.json").read_text())["training"]["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]


def test_resume_gives_the_same_weights(tmp_path):
    kw = dict(epochs=2, limit=256, progress=False, evaluate=False, config={"channels": 8, "hidden": 32})
    training.train("vae-2d", "digits", out=tmp_path / "a", **kw)
    b_dir = tmp_path / "b"
    training.train("vae-2d", "digits", out=b_dir, stop_after=1, **kw)
    assert (b_dir / "digits" / "vae-2d" / "resume.pt").exists()
    assert not (b_dir / "digits" / "vae-2d" / "model.safetensors").exists()
    training.train("vae-2d", "digits", out=b_dir, resume=True, **kw)
    za, zb = Zoo(tmp_path / "a").load("digits/vae-2d", "cpu"), Zoo(b_dir).load("digits/vae-2d", "cpu")
    for (k, va), vb in zip(za.state_dict().items(), zb.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)


@pytest.mark.slow
def test_warm_start_continues_from_a_checkpoint_and_counts_its_training(tmp_path):
    kw = dict(limit=512, progress=False, evaluate=False, config={"channels": 8, "hidden": 32})
    first = training.train("ae-16", "digits", epochs=3, out=tmp_path / "a", command="first run", **kw)
    before = json.loads((first / "config.json").read_text())["training"]
    again = training.train("ae-16", "digits", epochs=2, out=tmp_path / "b", init=first, lr=5e-4,
                           command="second run", **kw)
    after = json.loads((again / "config.json").read_text())["training"]
    # the second run starts where the first ended, not from scratch
    assert after["history"][0]["loss"] < before["history"][0]["loss"]
    assert after["history"][0]["loss"] < 1.5 * before["history"][-1]["loss"]
    assert after["continued_from"] == {"command": "first run", "epochs": 3, "wall_time_s": before["wall_time_s"],
                                       "hardware": before["hardware"], "lr": before["lr"]}
    card = (again / "README.md").read_text()
    assert "Continued from a checkpoint trained for 3 epochs" in card and "first run" in card
    assert "In total: 5 epochs" in card
    third = training.train("ae-16", "digits", epochs=1, out=tmp_path / "c", init=again, command="third", **kw)
    assert json.loads((third / "config.json").read_text())["training"]["continued_from"]["epochs"] == 5
    row = next(r for r in zoo_table.table(Zoo(tmp_path / "c"), "digits") if r["name"] == "digits/ae-16")
    total = json.loads((third / "config.json").read_text())["training"]
    assert row["epochs"] == 6                                     # the zoo's training column counts all of it
    assert row["wall_time_s"] == pytest.approx(total["wall_time_s"] + total["continued_from"]["wall_time_s"])
    with pytest.raises(ValueError, match="a warm start needs the same model"):
        training.train("ae-16", "digits", epochs=1, out=tmp_path / "d", init=first,
                       **{**kw, "config": {"channels": 16, "hidden": 32}})


@pytest.mark.slow  # two torchrun processes: ~9 s
def test_torchrun_ddp_two_cpu_processes(tmp_path):
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "explorer.training", "vae-2d",
           "--dataset", "digits", "--epochs", "1", "--limit", "256", "--batch-size", "32",
           "--out", str(tmp_path), "--no-eval", "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    info = Zoo(tmp_path).info("digits/vae-2d")
    assert info["training"]["processes"] == 2 and info["training"]["batch_size"] == 64


def test_cli_rejects_unknown_preset():
    with pytest.raises(SystemExit):
        training.main(["wgan", "--dataset", "digits", "--dataset", "nope"])
    with pytest.raises(ValueError, match="unknown preset"):
        training.main(["wgan", "--dataset", "digits"])


def test_reevaluate_rewrites_metrics_with_one_floor_for_all_models(tiny_zoo, tmp_path):
    root = tmp_path / "ck"
    shutil.copytree(tiny_zoo, root)
    a = evaluation.reevaluate("digits/vae-2d", root)
    b = evaluation.reevaluate("digits/gmm-vae-16", root)
    assert a["fid_n"] == b["fid_n"] and a["fid_floor"] == pytest.approx(b["fid_floor"])
    assert json.loads((root / "digits" / "gmm-vae-16" / "metrics.json").read_text())["fid"] == pytest.approx(b["fid"])
    assert "iw_nll" in (root / "digits" / "gmm-vae-16" / "README.md").read_text()


def test_reevaluate_keeps_the_zoo_block_and_the_sections_other_tools_added(tiny_zoo, tmp_path):
    root = tmp_path / "ck"
    shutil.copytree(tiny_zoo, root)
    d = root / "digits" / "vae-2d"
    block = {"fid": 12.5, "fid_n": 100, "fid_floor": 1.5}
    (d / "metrics.json").write_text(json.dumps({**json.loads((d / "metrics.json").read_text()), "zoo": block}))
    (d / "README.md").write_text((d / "README.md").read_text() + "\n## Zoo comparison\nscored at N = 100\n\n"
                                 "## DAE vs joint baseline\na table\n")
    out = evaluation.reevaluate("digits/vae-2d", root)
    assert "zoo" not in out and json.loads((d / "metrics.json").read_text())["zoo"] == block
    card = (d / "README.md").read_text()
    assert card.count("## Test metrics") == 1 and card.count("## Zoo comparison") == 1
    assert card.index("## Test metrics") < card.index("## Zoo comparison") < card.index("## DAE vs joint baseline")
    assert "scored at N = 100" in card and "recon_sharpness" in card


# ---- the card's 8 x 8 sample grid (evaluation.write_sample_grid)
def _tiles(path, side=8, pad=2, scale=2) -> torch.Tensor:
    """The (side*side, 28, 28) images of a grid PNG, in [0, 1]."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(path))[::scale, ::scale] / 255.0  # undo the nearest-neighbour scale
    step = 28 + pad
    return torch.tensor(np.stack([a[pad + r * step:pad + r * step + 28, pad + c * step:pad + c * step + 28]
                                  for r in range(side) for c in range(side)]), dtype=torch.float32)


def test_training_ships_a_grid_of_the_recipe_samples_shown_in_the_card(tiny_zoo, tmp_path):
    zoo = Zoo(tiny_zoo)
    d = zoo.path("digits/vae-2d")
    from PIL import Image

    assert Image.open(d / "samples.png").size == (2 * (8 * 30 + 2),) * 2
    expected, _ = evaluation.recipe_samples(zoo.load("digits/vae-2d"), "vae", 64)
    assert (_tiles(d / "samples.png") - expected[:, 0]).abs().max() <= 0.5 / 255 + 1e-6  # the same 64, in order
    card = (d / "README.md").read_text()
    assert card.count("## Sample grid") == 1 and "![64 samples](samples.png)" in card
    assert not (zoo.path("digits/classifier") / "samples.png").exists()
    assert "## Sample grid" not in (zoo.path("digits/classifier") / "README.md").read_text()
    # the CLI redraws it into a copy: same pixels, still one section, after the sections other tools added
    root = tmp_path / "ck"
    shutil.copytree(tiny_zoo, root)
    card_path = root / "digits" / "vae-2d" / "README.md"
    card_path.write_text(card_path.read_text() + "\n## Zoo comparison\nz\n\n## Samples and trade-off\nby eye\n")
    training.main(["vae-2d", "--dataset", "digits", "--out", str(root), "--samples-only"])
    training.main(["classifier", "--dataset", "digits", "--out", str(root), "--samples-only"])
    assert (root / "digits" / "vae-2d" / "samples.png").read_bytes() == (d / "samples.png").read_bytes()
    card = card_path.read_text()
    assert card.count("## Sample grid") == 1 and card.count("## Zoo comparison") == 1 and "by eye" in card
    assert not (root / "digits" / "classifier" / "samples.png").exists()


class _PlantedDiffusion(torch.nn.Module):
    """Samples like a class-conditional diffusion model: real test digits, of the requested class for even
    positions of a batch and of the next class for odd ones."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y
        self.config = type("C", (), {"classes": 10, "timesteps": 1000, "sampling_spacing": "trailing"})()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def sample(self, n, labels, generator, **kw):
        want = labels + torch.arange(n) % 2  # odd positions: the next class, i.e. off-class
        return torch.stack([self.x[(self.y == k % 10).nonzero()[i % 5, 0]] for i, k in enumerate(want.tolist())])


@pytest.mark.slow
def test_grid_counts_the_samples_off_their_requested_class(tmp_path):
    from explorer import data

    training.train("classifier", "digits", epochs=6, out=tmp_path, progress=False, config={"channels": 8, "features": 32})
    accuracy = Zoo(tmp_path).info("digits/classifier")["metrics"]["test_accuracy"]
    assert accuracy > 0.8
    test = data.load("digits", "test")
    model = _PlantedDiffusion(test.floats(), test.labels)
    samples, info = evaluation.sample_grid(model, "ddpm", "digits", tmp_path)
    assert samples.shape == (64, 1, 28, 28) and info["sampler"] == "ddim-50 eta=0.0 guidance=1.0 trailing"
    assert abs(info["off_class"] - 32) <= 64 * (1 - accuracy) + 4  # the 32 planted ones, give or take errors


# ---- float16 weights (checkpoints.SHIP_DTYPE)
PIXEL_BOUND = 2e-3  # max |pixel change| float16 storage may cause: half a grey level of an 8-bit image


def _decode_change(a, b, x, scale=3.0):
    """Max |pixel difference| of two models' decodes on 256 codes from scale N(0, I) and on a's codes of x."""
    z = scale * torch.randn(256, a.latent_dim, generator=torch.Generator().manual_seed(0))
    codes = a.encode(x)
    return (float((a.decode(z) - b.decode(z)).abs().max()), float((a.decode(codes) - b.decode(codes)).abs().max()))


@pytest.mark.parametrize("name", ["digits/vae-2d", "digits/ae-16", "digits/gmm-vae-16"])
def test_float16_save_load_stays_close_to_the_float32_model(tiny_zoo, tmp_path, name):
    from conftest import randomised
    from explorer import data

    m32 = randomised(Zoo(tiny_zoo).load(name, "cpu"), seed=3, std=1e-3)  # off the float16 grid: a float32 model
    family = Zoo(tiny_zoo).info(name)["family"]
    d = checkpoints.save(m32, tmp_path / name, family, {"dataset": "digits"}, dtype=checkpoints.ship_dtype(family))
    stored = checkpoints.stored_dtypes(d)
    params = {k for k, _ in m32.named_parameters()}
    assert {stored[k] for k in params} == {torch.float16}
    assert {stored[k] for k in stored.keys() - params} <= {torch.float32}  # buffers (fitted priors) stay float32
    m16 = Zoo(tmp_path).load(name, "cpu")
    assert {p.dtype for p in m16.parameters()} == {torch.float32}  # load casts to the parameters' dtype
    random_codes, test_codes = _decode_change(m32, m16, data.load("digits", "test").floats()[:256])
    assert 0 < random_codes <= PIXEL_BOUND and 0 < test_codes <= PIXEL_BOUND
    assert checkpoints.save(m32, tmp_path / "f32", family, {}).joinpath("model.safetensors").stat().st_size > \
        1.9 * (d / "model.safetensors").stat().st_size


def test_training_ships_float16_and_evaluates_what_it_ships(tiny_zoo):
    zoo = Zoo(tiny_zoo)
    for name in zoo.available():
        family = zoo.info(name)["family"]
        model = zoo.load(name, "cpu")
        stored = checkpoints.stored_dtypes(zoo.path(name))
        assert {stored[k] for k, _ in model.named_parameters()} == {checkpoints.ship_dtype(family)}, name
    assert checkpoints.ship_dtype("classifier") == torch.float32 and checkpoints.ship_dtype("vae") == torch.float16


def test_shipped_weights_are_float16_except_the_classifiers():
    zoo = Zoo()
    for name in zoo.available():
        info = zoo.info(name)
        model = models.build(info["family"], info["config"])  # no weights needed: the names and kinds
        stored = checkpoints.stored_dtypes(zoo.path(name))
        params = {k for k, p in model.named_parameters() if p.is_floating_point()}
        if info.get("vae_weights"):  # a latent model that refers to its autoencoder's weights holds no copy
            params = {k for k in params if not k.startswith("vae.")}
        want = torch.float32 if info["family"] == "classifier" else torch.float16
        assert {stored[k] for k in params} == {want}, name
        assert {stored[k] for k in stored.keys() - params if isinstance(stored[k], torch.dtype)} <= {torch.float32}, name


def _half_ulp_noise(w: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Uniform noise within +-half a float16 spacing of each value: where the float32 original of a
    float16-rounded weight lies."""
    e = torch.floor(torch.log2(w.abs().clamp_min(2.0 ** -14)))        # binade (subnormals share 2^-14's spacing)
    return (torch.rand(w.shape, generator=g) - 0.5) * 2.0 ** (e - 10)  # float16: 10 fraction bits


@pytest.mark.slow
def test_float16_precision_suffices_for_every_shipped_decoder():
    """The shipped float32 weights are gone; what stands in for them: the shipped float16 weights moved by
    rounding-sized noise. Decodes of the codes of test images must move by at most PIXEL_BOUND, else
    float16 is too coarse for that decoder. (Measured on the real conversion: <= 1.6e-3. Codes far from
    the data move more: up to 3.2e-3 at 3 N(0, I), and 2.7e-3 for the DCGAN's prior codes.)"""
    from explorer import data

    zoo = Zoo()
    g = torch.Generator().manual_seed(0)
    names = [n for n in zoo.available() if zoo.info(n)["family"] in ("ae", "vae", "gmm-vae", "dae")]
    assert len(names) >= 8
    for name in names:
        m = zoo.load(name, "cpu")
        codes = m.encode(data.load_assets(zoo.info(name)["dataset"]).floats()[:500])
        before = m.decode(codes)
        with torch.no_grad():
            for p in m.decoder.parameters():
                p.add_(_half_ulp_noise(p, g))
        assert float((m.decode(codes) - before).abs().max()) <= PIXEL_BOUND, name


def test_halve_command_converts_once_and_reports_the_change(tmp_path, capsys):
    from conftest import randomised

    vae = randomised(models.build("vae", {"latent_dim": 2, "channels": 8, "hidden": 32}), std=0.05)
    clf = models.build("classifier", {"channels": 8, "features": 32})
    checkpoints.save(vae, tmp_path / "digits" / "vae-2d", "vae", {"dataset": "digits"})
    checkpoints.save(clf, tmp_path / "digits" / "classifier", "classifier", {"dataset": "digits"})
    checkpoints.main(["halve", "--checkpoints", str(tmp_path)])
    out = capsys.readouterr().out
    assert "digits/vae-2d" in out and "max |decode change|" in out and "already stored so" in out
    report = checkpoints.halve(Zoo(tmp_path), report=None)  # a second run changes nothing
    assert all("drift" not in row for row in report.values())
    assert report["digits/vae-2d"]["dtype"] == "float16" and report["digits/classifier"]["dtype"] == "float32"
    assert {v for v in checkpoints.stored_dtypes(tmp_path / "digits" / "classifier").values()
            if isinstance(v, torch.dtype)} == {torch.float32}
    loaded = Zoo(tmp_path).load("digits/vae-2d", "cpu")
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    assert float((loaded.decode(z) - vae.decode(z)).abs().max()) <= PIXEL_BOUND
