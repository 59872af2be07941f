"""One prepared run for a lent GPU: the pixel DDPMs trained much further from their shipped weights, their
samples measured there (the trade-off grid at N = 2,000), and the device tests run once on CUDA.

A lent GPU machine comes for minutes, takes a working tree of at most 64 MiB (tracked files, untracked ones
git does not ignore, and carried folders), reaches no package registry and runs torch 2.11. This repository's
tracked files are ~53 MiB, mostly weights, and Fashion-MNIST's IDX files are ~31 MB. So, here:

    python benchmarks/gpu_job.py pack       # .gpu/ (git-ignored): the IDX files and the checkpoints the job needs
    python benchmarks/gpu_job.py slim       # checkpoints/ and the page's vendor/ leave git's index for the
                                          # call (their files stay on disk); commit nothing until unslim
    device run, carry [".gpu"], timeout_s 600:
        PYTHONUNBUFFERED=1 python3 benchmarks/gpu_job.py run --minutes 9 --out $OUT 2>&1 | tee $OUT/job.log
    python benchmarks/gpu_job.py unslim     # git's index as it was
    python benchmarks/gpu_job.py unpack <files_at>/results.tar   # the new checkpoints into checkpoints/

``run`` ends by writing ``results.tar`` (each trained checkpoint's folder, without resume files),
``summary.json`` and ``pytest.txt`` into ``--out``: three files, within what a device call brings back.
Try the whole run on the CPU first with a tiny checkpoint (tests/test_gpu_job.py does):

    python benchmarks/gpu_job.py run --tiny --root <folder with digits/ddpm-cosine> --out /tmp/gpu-out
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from explorer import checkpoints, data  # noqa: E402

PACK = REPO / ".gpu"
# What leaves git's index for a device call: the weights and the page's 14 MB wasm (assets/, 4 MB, stays
# for the tests).
SLIM_PATHS = ("checkpoints", "explorer/ui/web/vendor")
SLIM_BEGIN, SLIM_END = "# benchmarks/gpu_job.py slim: begin", "# benchmarks/gpu_job.py slim: end"
# The checkpoints the job trains, and those that travel for the device tests and the FID classifier.
PRESETS = ("ddpm-cosine", "ddpm-linear")
CARRIED = ("classifier", "ddpm-cosine", "ddpm-linear", "vae-16", "ae-16", "gamix-vae-16", "dae-16", "dcgan",
           "ldm-vae-16")
# Test files that need neither gradio nor a browser: models, samplers, training, and the device comparisons.
DEVICE_TESTS = ("tests/test_devices.py", "tests/test_diffusion.py", "tests/test_models.py", "tests/test_dae.py",
                "tests/test_gamix.py", "tests/test_patchgan.py", "tests/test_metrics_latents.py")
STALE_AFTER_UNPACK = "targets.json"  # the N = 2,000 target points a CPU session measured on the old weights
RESULT_FILES = {"model.safetensors", "config.json", "metrics.json", "README.md", "samples.png", "tradeoff.json"}
TRAIN_IMAGES = 60000


# ---------------------------------------------------------------- here, before and after the call
def pack(dest: Path = PACK, dataset: str = "fashion-mnist", names=CARRIED, root=None) -> int:
    """Copy the dataset's IDX files and the named checkpoints into ``dest`` (ignored by git); returns bytes."""
    src = data.find_idx(dataset)
    if src is None:
        raise data.DatasetNotFound(f"{dataset}: no IDX files here to pack (apt-get install dataset-fashion-mnist)")
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "data" / dataset).mkdir(parents=True)
    for f in src.iterdir():
        if "idx" in f.name:
            shutil.copy2(f, dest / "data" / dataset / f.name)
    zoo = checkpoints.Zoo(root)
    for name in names:
        d = zoo.path(f"{dataset}/{name}")
        out = dest / "checkpoints" / dataset / name
        out.mkdir(parents=True)
        for f in d.iterdir():
            if f.name in RESULT_FILES or f.name == checkpoints.AGGREGATE_PRIOR:
                shutil.copy2(f, out / f.name)
    _exclude_add([f"/{dest.relative_to(REPO)}/"] if dest.is_relative_to(REPO) else [])
    return sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())


def _git(*args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=check, capture_output=True, text=True).stdout


def _exclude_path() -> Path:
    return REPO / _git("rev-parse", "--git-path", "info/exclude").strip()


def _exclude_add(lines: list[str], block: bool = False) -> None:
    path = _exclude_path()
    text = path.read_text() if path.is_file() else ""
    new = [line for line in lines if line not in text.splitlines()]
    if block:
        new = [SLIM_BEGIN, *lines, SLIM_END]
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + ("" if text.endswith("\n") or not text else "\n") + "\n".join(new) + "\n")


def slim() -> None:
    """Take SLIM_PATHS out of git's index and ignore them, so a device call leaves them behind."""
    if SLIM_BEGIN in (_exclude_path().read_text() if _exclude_path().is_file() else ""):
        print("already slim; `python benchmarks/gpu_job.py unslim` restores the index")
        return
    staged = _git("diff", "--cached", "--name-only").strip()
    if staged:  # unslim resets those paths' index entries to HEAD: staged work there would be lost
        raise SystemExit(f"staged changes ({staged.splitlines()[0]} ...): commit or unstage them first")
    _git("rm", "-r", "-q", "--cached", "--", *SLIM_PATHS)
    _exclude_add([f"/{p}/" for p in SLIM_PATHS], block=True)
    print(f"slim: {', '.join(SLIM_PATHS)} left the index; {travelling_bytes() / 2**20:.1f} MiB would travel "
          f"(limit 64). Commit nothing until `python benchmarks/gpu_job.py unslim`.")


def unslim() -> None:
    """Undo :func:`slim`: the paths' index entries back from HEAD, the ignore block removed. Idempotent."""
    _git("reset", "-q", "--", *SLIM_PATHS)
    path = _exclude_path()
    if path.is_file():
        lines, keep, out = path.read_text().splitlines(), True, []
        for line in lines:
            if line == SLIM_BEGIN:
                keep = False
            elif line == SLIM_END:
                keep = True
            elif keep:
                out.append(line)
        path.write_text("\n".join(out) + ("\n" if out else ""))
    print("unslim: the index is as it was")


def travelling_bytes() -> int:
    """What a device call would send: tracked files, untracked files git does not ignore, and .gpu/."""
    names = set(_git("ls-files", "-z").split("\0")) | set(_git("ls-files", "-z", "--others", "--exclude-standard")
                                                          .split("\0"))
    size = sum((REPO / n).stat().st_size for n in names if n and (REPO / n).is_file())
    return size + sum(f.stat().st_size for f in PACK.rglob("*") if f.is_file())


def unpack(tar_path, root=None) -> list[str]:
    """Extract a ``run``'s results.tar into the checkpoint root (default: the shipped checkpoints/). Only
    ``<dataset>/<preset>/<known file>`` members are taken; each checkpoint is loaded back as a check, and
    its ``targets.json``, measured on the replaced weights, is removed (the run's tradeoff.json supersedes it)."""
    root = Path(root or checkpoints.ROOT)
    names = []
    with tarfile.open(tar_path) as tar:
        members = tar.getmembers()
        for m in members:
            parts = Path(m.name).parts
            if not (m.isfile() and len(parts) == 3 and parts[1] in PRESETS and parts[2] in RESULT_FILES
                    and parts[0] in data.NAMES):
                raise ValueError(f"{tar_path}: unexpected member {m.name!r}; nothing was extracted")
        tar.extractall(root, members=members, filter="data")
        names = sorted({"/".join(Path(m.name).parts[:2]) for m in members})
    zoo = checkpoints.Zoo(root)
    for name in names:
        zoo.load(name, device="cpu")  # safetensors, strict keys: a damaged file says so here
        # extra points measured on the weights just replaced (benchmarks/diffusion_tradeoff.py --file) are stale
        (zoo.path(name) / STALE_AFTER_UNPACK).unlink(missing_ok=True)
    return names


# ---------------------------------------------------------------- there: the run itself
def probe_epoch_seconds(config: dict, device: str, batch: int = 128, steps: int = 10) -> float:
    """Seconds per training epoch of a DDPM with ``config`` on ``device`` (bfloat16 autocast where native),
    from ``steps`` timed Adam steps on random batches after three warm-up steps."""
    from explorer import models
    from explorer.models.diffusion import bf16_native

    model = models.build("ddpm", config).to(device)
    opt = model.configure_optimizers(1e-4)
    x = torch.rand(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    bf16 = bf16_native(device)
    dtype = torch.device(device).type

    def step():
        with torch.autocast(dtype, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = model((x, y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if dtype == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dtype == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps * math.ceil(TRAIN_IMAGES / batch)


def _run_tests(out: Path, seconds: float) -> str:
    """The device test files under pytest, output to out/pytest.txt; returns pytest's summary line."""
    if not (REPO / "checkpoints").exists() and (PACK / "checkpoints").is_dir():
        shutil.copytree(PACK / "checkpoints", REPO / "checkpoints")  # slimmed away: the carried subset stands in
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *DEVICE_TESTS]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=max(30.0, seconds))
        text = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        text += f"\n(pytest stopped after {seconds:.0f} s)\n"
    (out / "pytest.txt").write_text(text)
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run(out, minutes: float = 9.0, root=None, data_dir=None, presets=PRESETS, dataset: str = "fashion-mnist",
        lr: float = 5e-4, batch: int | None = None, tests: bool = True, tradeoff_n: int = 2000, tiny: bool = False,
        device: str | None = None) -> dict:
    """Tests, then each preset warm-started from its checkpoint in ``root`` and trained for as many epochs
    as fit its share of ``minutes`` (measured by :func:`probe_epoch_seconds`), then the trade-off grid;
    results.tar and summary.json into ``out``. ``batch``: default 512 on a GPU (at 128 this small UNet's steps
    are too small to keep a GPU busy), 128 on a CPU. ``tiny``: one epoch on 512 images
    (a CPU rehearsal)."""
    from explorer import evaluation, training

    t_end = time.time() + 60 * minutes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(root or PACK / "checkpoints")
    if data_dir or (PACK / "data").is_dir():
        os.environ["EXPLORER_DATA"] = str(data_dir or PACK / "data")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    batch = batch or (512 if device.startswith("cuda") else 128)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    summary = {"device": evaluation.hardware(device), "torch": torch.__version__, "minutes": minutes,
               "models": {}}
    print(json.dumps({k: summary[k] for k in ("device", "torch")}), flush=True)
    if tests:
        summary["tests"] = _run_tests(out, min(150.0, 0.25 * (t_end - time.time())))  # ~105 s on 2 CPU cores
        print("tests:", summary["tests"], flush=True)
    reserve = 0 if tiny else 100 * len(presets)  # the trade-off grid, ~1-2 min per model on a GPU
    for i, preset in enumerate(presets):
        name = f"{dataset}/{preset}"
        init = checkpoints.Zoo(root).path(name)
        config = checkpoints.read_config(init, name)["config"]
        share = (t_end - time.time() - reserve - 30) / (len(presets) - i)
        epoch_s = probe_epoch_seconds(config, device, batch) * (512 / TRAIN_IMAGES if tiny else 1.0)
        epochs = 1 if tiny else max(1, int(0.85 * share / epoch_s))
        print(f"{name}: ~{epoch_s:.1f} s per epoch here; {epochs} epochs in {share:.0f} s", flush=True)
        command = (f"python -m explorer.training {preset} --dataset {dataset} --init {name} --epochs {epochs} "
                   f"--lr {lr} --batch-size {batch}")
        t0 = time.time()
        training.train(preset, dataset, epochs, root, batch_size=batch, lr=lr, device=device, config=config,
                       init=init, command=command, progress=False, limit=512 if tiny else None,
                       deadline=t0 + 1.3 * share)
        done = not (init / "resume.pt").exists()
        summary["models"][name] = {"epochs": epochs, "seconds": round(time.time() - t0, 1), "finished": done,
                                   **({"metrics": json.loads((init / checkpoints.METRICS).read_text())}
                                      if done else {})}
        print(name, json.dumps(summary["models"][name]), flush=True)
    left = t_end - time.time() - 20
    if left > 30:
        steps = ["5", "10"] if tiny else ["10", "20", "50", "100", "250", "1000"]
        cmd = [sys.executable, str(REPO / "benchmarks" / "diffusion_tradeoff.py"), "--checkpoints", str(root),
               "--models", *[f"{dataset}/{p}" for p in presets], "--n", str(tradeoff_n), "--device", device,
               "--batch", "1000" if device.startswith("cuda") else "250", "--steps", *steps]
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=left)
            summary["tradeoff"] = proc.stdout.splitlines()[-12:] + proc.stderr.splitlines()[-3:]
        except subprocess.TimeoutExpired:
            summary["tradeoff"] = [f"stopped after {left:.0f} s"]
        print("\n".join(summary["tradeoff"]), flush=True)
    with tarfile.open(out / "results.tar", "w") as tar:  # the finished ones: an unfinished run kept its old weights
        for preset in presets:
            if not summary["models"][f"{dataset}/{preset}"]["finished"]:
                continue
            d = root / dataset / preset
            for f in sorted(d.iterdir()):
                if f.name in RESULT_FILES:
                    tar.add(f, arcname=f"{dataset}/{preset}/{f.name}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python benchmarks/gpu_job.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)
    sub.add_parser("pack", help="copy the data and checkpoints the run needs into .gpu/")
    sub.add_parser("slim", help="take checkpoints/, assets/ and the vendored wasm out of git's index")
    sub.add_parser("unslim", help="put them back")
    r = sub.add_parser("run", help="the device run")
    r.add_argument("--out", required=True)
    r.add_argument("--minutes", type=float, default=9.0, help="the whole run's budget (the call's limit is 10)")
    r.add_argument("--root", help="checkpoint root to warm-start from and write to (default: .gpu/checkpoints)")
    r.add_argument("--data", help="folder holding <dataset>/ IDX files (default: .gpu/data)")
    r.add_argument("--presets", nargs="*", default=list(PRESETS), choices=PRESETS)
    r.add_argument("--dataset", default="fashion-mnist", choices=data.NAMES)
    r.add_argument("--lr", type=float, default=5e-4)
    r.add_argument("--batch-size", type=int, help="default: 512 on a GPU, 128 on a CPU")
    r.add_argument("--tradeoff-n", type=int, default=2000)
    r.add_argument("--no-tests", action="store_true")
    r.add_argument("--tiny", action="store_true", help="one epoch on 512 images: rehearse on the CPU")
    r.add_argument("--device")
    u = sub.add_parser("unpack", help="extract a run's results.tar into checkpoints/")
    u.add_argument("tar")
    u.add_argument("--root")
    a = p.parse_args(argv)
    if a.verb == "pack":
        size = pack()
        print(f"packed {size / 2**20:.1f} MiB into {PACK}; next: python benchmarks/gpu_job.py slim")
    elif a.verb == "slim":
        slim()
    elif a.verb == "unslim":
        unslim()
    elif a.verb == "unpack":
        print("unpacked", ", ".join(unpack(a.tar, a.root)))
    else:
        s = run(a.out, a.minutes, a.root, a.data, tuple(a.presets), a.dataset, a.lr, a.batch_size,
                not a.no_tests, a.tradeoff_n, a.tiny, a.device)
        print(json.dumps({k: v for k, v in s.items() if k != "tradeoff"}, indent=2))


if __name__ == "__main__":
    main()
