"""benchmarks/gpu_job.py: the prepared GPU run, rehearsed on the CPU with tiny checkpoints, and the packing around it."""
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer import checkpoints, data, training

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu_job  # noqa: E402  (a script beside the benchmarks, not part of the package)

pytestmark = pytest.mark.slow  # each test trains or samples a tiny DDPM; the rehearsal trains for ~40 s

TINY_DDPM = {"channels": 8, "mults": [1, 2], "timesteps": 50, "attention": False}


@pytest.fixture()
def tiny_root(tmp_path):
    root = tmp_path / "ck"
    training.train("classifier", "digits", epochs=4, out=root, progress=False, config={"channels": 8, "features": 32})
    training.train("ddpm-cosine", "digits", epochs=1, out=root, limit=256, progress=False, config=TINY_DDPM,
                   evaluate=False, command="the first run")
    return root


def test_the_run_rehearsed_on_the_cpu_trains_on_measures_and_brings_back_one_tar(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA", str(tmp_path / "no-data"))  # run() points it at --data; restored after
    before = checkpoints.load_dir(tiny_root / "digits" / "ddpm-cosine", "cpu").state_dict()
    out = tmp_path / "out"
    gpu_job.main(["run", "--tiny", "--root", str(tiny_root), "--data", str(tmp_path / "data"), "--out", str(out),
                  "--dataset", "digits", "--presets", "ddpm-cosine", "--no-tests", "--tradeoff-n", "64",
                  "--device", "cpu", "--minutes", "10"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["digits/ddpm-cosine"]["finished"] and summary["models"]["digits/ddpm-cosine"]["epochs"] == 1
    assert "fid" in summary["models"]["digits/ddpm-cosine"]["metrics"]
    with tarfile.open(out / "results.tar") as tar:
        assert sorted(tar.getnames()) == sorted(f"digits/ddpm-cosine/{f}" for f in gpu_job.RESULT_FILES)
    fresh = tmp_path / "fresh"
    (fresh / "digits" / "ddpm-cosine").mkdir(parents=True)
    (fresh / "digits" / "ddpm-cosine" / "targets.json").write_text("{}")  # measured on the weights replaced
    assert gpu_job.unpack(out / "results.tar", fresh) == ["digits/ddpm-cosine"]
    d = fresh / "digits" / "ddpm-cosine"
    assert not (d / "targets.json").exists()
    after = checkpoints.load_dir(d, "cpu").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained on from the first run's weights
    card = (d / "README.md").read_text()
    assert "--init digits/ddpm-cosine --epochs 1" in card and "Continued from a checkpoint trained for 1 epochs" in card
    assert "## Sample grid" in card
    rows = json.loads((d / "tradeoff.json").read_text())["rows"]
    assert {(r["eta"], r["steps"]) for r in rows} == {(0.0, 5), (0.0, 10), (1.0, 5), (1.0, 10)}
    assert all(0 <= r["off_class"] <= 1 for r in rows)


def test_unpack_refuses_anything_but_the_trained_checkpoints_files(tmp_path):
    bad = tmp_path / "src" / "run.sh"
    bad.parent.mkdir()
    bad.write_text("echo hi")
    for arcname in ("fashion-mnist/ddpm-cosine/run.sh", "../ddpm-cosine/model.safetensors",
                    "fashion-mnist/vae-16/model.safetensors"):
        with tarfile.open(tmp_path / "r.tar", "w") as tar:
            tar.add(bad, arcname=arcname)
        with pytest.raises(ValueError, match="unexpected member"):
            gpu_job.unpack(tmp_path / "r.tar", tmp_path / "root")
        assert not (tmp_path / "root").exists() or not any((tmp_path / "root").rglob("*"))


def test_pack_copies_the_idx_files_and_the_named_checkpoints(tmp_path, monkeypatch):
    images = np.zeros((3, 28, 28), np.uint8)
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    for split, (img, lab) in data.FILES.items():
        data.write_idx(tmp_path / "data" / "mnist" / f"{img}.gz", images)
        data.write_idx(tmp_path / "data" / "mnist" / f"{lab}.gz", np.arange(3, dtype=np.uint8))
    monkeypatch.setenv("EXPLORER_DATA", str(tmp_path / "data"))
    root = tmp_path / "ck"
    training.train("classifier", "digits", epochs=1, out=root, limit=64, progress=False, evaluate=False,
                   config={"channels": 4, "features": 8})
    shutil.copytree(root / "digits" / "classifier", root / "mnist" / "classifier")
    size = gpu_job.pack(tmp_path / "pack", "mnist", ("classifier",), root)
    files = sorted(str(f.relative_to(tmp_path / "pack")) for f in (tmp_path / "pack").rglob("*") if f.is_file())
    assert "checkpoints/mnist/classifier/model.safetensors" in files
    assert {f"data/mnist/{stem}.gz" for pair in data.FILES.values() for stem in pair} <= set(files)
    assert size == sum(f.stat().st_size for f in (tmp_path / "pack").rglob("*") if f.is_file())


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_slim_takes_the_heavy_folders_out_of_the_index_and_unslim_puts_them_back(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    for rel in ("checkpoints/a/config.json", "assets/t.npz", "explorer/ui/web/vendor/ort.wasm", "explorer/x.py"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(rel * 100)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    exclude = repo / ".git" / "info" / "exclude"
    exclude_before = exclude.read_text()
    monkeypatch.setattr(gpu_job, "REPO", repo)
    monkeypatch.setattr(gpu_job, "PACK", repo / ".gpu")
    full = gpu_job.travelling_bytes()
    gpu_job.slim()
    assert _git(repo, "ls-files").split() == ["assets/t.npz", "explorer/x.py"]
    assert "??" not in _git(repo, "status", "--porcelain")  # the folders are ignored: nothing would travel
    assert gpu_job.travelling_bytes() == len("assets/t.npz" * 100) + len("explorer/x.py" * 100) < full
    assert (repo / "checkpoints" / "a" / "config.json").is_file()  # the files themselves stay
    gpu_job.slim()  # a second slim changes nothing
    gpu_job.unslim()
    assert _git(repo, "status", "--porcelain") == "" and len(_git(repo, "ls-files").split()) == 4
    assert exclude.read_text() == exclude_before
    gpu_job.unslim()  # idempotent
    assert _git(repo, "status", "--porcelain") == ""
    (repo / "explorer" / "x.py").write_text("changed")
    _git(repo, "add", "explorer/x.py")
    with pytest.raises(SystemExit, match="staged changes"):
        gpu_job.slim()


def _tradeoff_benchmark():
    """benchmarks/diffusion_tradeoff.py as a module (benchmarks/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("diffusion_tradeoff",
                                                  gpu_job.REPO / "benchmarks" / "diffusion_tradeoff.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_tradeoff_benchmark_writes_extra_points_beside_the_charted_grid_and_refuses_paths(tiny_root):
    bench = _tradeoff_benchmark()
    d = tiny_root / "digits" / "ddpm-cosine"
    bench.main(["--checkpoints", str(tiny_root), "--models", "digits/ddpm-cosine", "--n", "40", "--steps", "5",
                "--etas", "1", "--batch", "20", "--file", "targets.json"])
    result = json.loads((d / "targets.json").read_text())
    assert result["fid_n"] == 40 and [(r["eta"], r["steps"]) for r in result["rows"]] == [(1.0, 5)]
    assert not (d / "tradeoff.json").exists()  # the charted grid is left as it was
    for bad in ("../targets.json", "sub/targets.json", "targets.txt"):
        with pytest.raises(SystemExit):
            bench.main(["--checkpoints", str(tiny_root), "--file", bad])
    assert not (tiny_root / "digits" / "targets.json").exists()


def test_a_stopped_tradeoff_point_goes_on_from_its_saved_batches_and_equals_one_uninterrupted_run(tiny_root, tmp_path):
    bench = _tradeoff_benchmark()
    d, partial = tiny_root / "digits" / "ddpm-cosine", tmp_path / "partial"
    # eta = 1 draws fresh noise at every step, so the second batch matches only if the generator's state is restored
    args = ["--checkpoints", str(tiny_root), "--models", "digits/ddpm-cosine", "--n", "40", "--steps", "5",
            "--etas", "1", "--batch", "20"]
    bench.main(args + ["--file", "straight.json"])
    straight = json.loads((d / "straight.json").read_text())["rows"]

    bench.main(args + ["--file", "resumed.json", "--partial", str(partial), "--max-batches", "1"])
    assert not (d / "resumed.json").exists()  # stopped half way: no result yet
    kept = list(partial.rglob("*.pt"))
    assert len(kept) == 1 and torch.load(kept[0], weights_only=True)["samples"].shape[0] == 20
    state = torch.load(kept[0], weights_only=True)  # as saved before --spacing existed: read as leading
    torch.save({**state, "key": {k: v for k, v in state["key"].items() if k != "spacing"}}, kept[0])
    bench.main(args + ["--file", "resumed.json", "--partial", str(partial)])
    resumed = json.loads((d / "resumed.json").read_text())["rows"]
    assert [(r["eta"], r["steps"], r["fid"], r["off_class"]) for r in resumed] == \
        [(r["eta"], r["steps"], r["fid"], r["off_class"]) for r in straight]
    assert not list(partial.rglob("*.pt"))  # the saved batches go once the result is written

    # batches saved for other weights are not mixed in: the point starts afresh
    bench.main(args + ["--file", "other.json", "--partial", str(partial), "--max-batches", "1"])
    (kept,) = partial.rglob("*.pt")
    state = torch.load(kept, weights_only=True)
    torch.save({**state, "key": {**state["key"], "weights": "0" * 64}}, kept)
    bench.main(args + ["--file", "other.json", "--partial", str(partial), "--max-batches", "1"])
    state = torch.load(kept, weights_only=True)
    assert state["key"]["weights"] != "0" * 64 and state["samples"].shape[0] == 20  # one batch, not two
    assert not (d / "other.json").exists()
    with pytest.raises(SystemExit):
        bench.main(args + ["--max-batches", "1"])  # nowhere to keep the batches


def test_the_tradeoff_benchmark_records_its_timestep_spacing(tiny_root):
    bench = _tradeoff_benchmark()
    d = tiny_root / "digits" / "ddpm-cosine"
    fids = {}
    for spacing in ("leading", "trailing"):
        bench.main(["--checkpoints", str(tiny_root), "--models", "digits/ddpm-cosine", "--n", "40", "--steps", "5",
                    "--etas", "0", "--batch", "40", "--spacing", spacing, "--file", f"{spacing}.json"])
        result = json.loads((d / f"{spacing}.json").read_text())
        assert result["spacing"] == spacing
        fids[spacing] = result["rows"][0]["fid"]
    assert fids["leading"] != fids["trailing"]  # the same seeds, another chain
    bench.main(["--checkpoints", str(tiny_root), "--models", "digits/ddpm-cosine", "--n", "40", "--steps", "5",
                "--etas", "0", "--batch", "40", "--file", "own.json"])
    own = json.loads((d / "own.json").read_text())
    assert own["spacing"] == "trailing" and own["rows"][0]["fid"] == fids["trailing"]  # unset: the model's own
    # --merge: a grid re-measured under another spacing keeps the earlier points at all T steps (the same
    # chain either way) and those it does not measure again, and drops the other-spacing ones it cannot keep
    T = TINY_DDPM["timesteps"]
    common = ["--checkpoints", str(tiny_root), "--models", "digits/ddpm-cosine", "--n", "40", "--batch", "40",
              "--file", "grid.json"]
    bench.main(common + ["--steps", "4", "5", str(T), "--etas", "0", "--spacing", "leading"])
    before = {(r["eta"], r["steps"]): r for r in json.loads((d / "grid.json").read_text())["rows"]}
    bench.main(common + ["--steps", "5", "--etas", "0", "--spacing", "trailing", "--merge"])
    merged = json.loads((d / "grid.json").read_text())
    assert merged["spacing"] == "trailing"
    assert [(r["steps"], r["spacing"]) for r in merged["rows"]] == [(5, "trailing"), (T, "leading")]
    assert merged["rows"][0]["fid"] == fids["trailing"] and merged["rows"][1] == before[0.0, T]
    bench.main(common + ["--steps", "4", "--etas", "0", "--spacing", "trailing", "--merge"])  # adds a point
    assert [r["steps"] for r in json.loads((d / "grid.json").read_text())["rows"]] == [4, 5, T]
    bench.main(common + ["--steps", "4", "--etas", "0", "--spacing", "trailing", "--merge", "--n", "20"])
    assert [r["steps"] for r in json.loads((d / "grid.json").read_text())["rows"]] == [4]  # another N: not mixed
    with pytest.raises(SystemExit):
        bench.main(["--checkpoints", str(tiny_root), "--spacing", "middle"])
