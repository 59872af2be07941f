"""The Decoupled Autoencoder against its jointly trained baseline, over several seeds.

    python -m explorer.dae_study run --seeds 0 1 2 --out runs/dae-study    # train + evaluate (resumable)
    python -m explorer.dae_study summary --out runs/dae-study --ship       # table; seed 0 into checkpoints/

For each seed, both autoencoders (``dae-16``: two stages; ``dae-16-joint``: the same encoder and decoder
trained together, same epochs, data and latent shape) are trained, and on each latent both generators
are fitted: the Gaussian mixture inside the autoencoder checkpoint, and latent diffusion
(``ldm-dae-16`` / ``ldm-dae-16-joint``). Per run the study records reconstruction MSE, classifier-FID of
each generator's samples with its real-vs-real floor, two measures of how simple the latent
distribution is (the mixture's held-out log-likelihood per dimension on standardised codes; the latent
diffusion's held-out eps-MSE), and wall time. ``summary`` reports mean and sample standard deviation
over seeds, and with ``--ship`` copies seed 0's checkpoints into the shipped zoo with the table in
their cards (``study.json`` beside each).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from . import cards, checkpoints

DATASET = "fashion-mnist"
ARMS = {"dae": ("dae-16", "ldm-dae-16"), "joint": ("dae-16-joint", "ldm-dae-16-joint")}
STUDY = "study.json"
SECTION = "## DAE vs joint baseline"  # its section in the four checkpoints' cards

# (key in the table, where it comes from, label, lower is better?)
ROWS = [
    ("test_mse", ("ae", "test_mse"), "reconstruction MSE (test)", True),
    ("fid_gmm", ("ae", "fid"), "FID, Gaussian-mixture samples", True),
    ("fid_ldm", ("ldm", "fid"), "FID, latent-diffusion samples", True),
    ("gmm_loglik", ("ae", "prior_loglik_per_dim"), "mixture held-out log-lik / dim", False),
    ("ldm_eps_mse", ("ldm", "test_eps_mse"), "latent diffusion held-out eps-MSE", True),
    ("linear_probe", ("ae", "linear_probe"), "linear-probe accuracy", False),
    ("train_s", ("ae", "wall_time_s"), "autoencoder training (s)", True),
    ("ldm_train_s", ("ldm", "wall_time_s"), "latent diffusion training (s)", True),
]


def run(seeds, out, epochs=None, ldm_epochs=None, progress=True, dataset=DATASET, limit=None,
        config=None, arms=tuple(ARMS)) -> None:
    """Train and evaluate every (seed, arm); skips what a previous call finished. ``limit`` and
    ``config`` (autoencoder config overrides) make tiny runs for tests; ``arms`` lets two processes
    share a seed (one per arm)."""
    from . import training

    out = Path(out)
    for seed in seeds:
        root = out / f"seed{seed}"
        for arm, (ae, ldm) in ARMS.items():
            if arm not in arms:
                continue
            for preset, ep in ((ae, epochs), (ldm, ldm_epochs)):
                folder = root / dataset / preset
                if (folder / checkpoints.METRICS).is_file():
                    continue
                training.train(preset, dataset, epochs=ep, out=root, seed=seed, resume=True, progress=progress,
                               limit=limit, config=config if preset == ae else None,
                               command=f"python -m explorer.training {preset} --dataset {dataset} --seed {seed}"
                                       + (f" --epochs {ep}" if ep else ""))
        if set(arms) != set(ARMS):
            continue
        res = seed_results(root, dataset)
        print(f"seed {seed}: " + json.dumps({arm: {k: v for k, v in row.items() if k != "history"}
                                             for arm, row in res.items()}), flush=True)


def seed_results(root, dataset=DATASET) -> dict:
    """One seed's figures, per arm, read back from the checkpoints' config.json and metrics.json."""
    zoo = checkpoints.Zoo(root)
    res = {}
    for arm, (ae, ldm) in ARMS.items():
        info = {"ae": zoo.info(f"{dataset}/{ae}"), "ldm": zoo.info(f"{dataset}/{ldm}")}
        row = {}
        for key, (which, field), _, _ in ROWS:
            src = info[which]
            row[key] = src["training"][field] if field == "wall_time_s" else src["metrics"].get(field)
        row["fid_floor_gmm"], row["fid_n_gmm"] = info["ae"]["metrics"].get("fid_floor"), info["ae"]["metrics"].get("fid_n")
        row["fid_floor_ldm"], row["fid_n_ldm"] = info["ldm"]["metrics"].get("fid_floor"), info["ldm"]["metrics"].get("fid_n")
        row["history"] = info["ae"]["training"]["history"]
        row["epochs"] = info["ae"]["training"]["epochs"]
        row["hardware"] = info["ae"]["training"]["hardware"]
        res[arm] = row
    return res


def summarise(out, dataset=DATASET) -> dict:
    """Mean and sample sd over the seeds found under ``out``, per arm and metric, plus the per-seed rows."""
    out = Path(out)
    seeds = sorted(int(p.name[4:]) for p in out.glob("seed*")
                   if all((p / dataset / name / checkpoints.METRICS).is_file() for pair in ARMS.values() for name in pair))
    if not seeds:
        raise FileNotFoundError(f"no finished seed under {out}; run `python -m explorer.dae_study run` first")
    per_seed = {s: seed_results(out / f"seed{s}", dataset) for s in seeds}
    table = {}
    for key, _, label, lower in ROWS:
        row = {"label": label, "lower_is_better": lower}
        for arm in ARMS:
            vals = [per_seed[s][arm][key] for s in seeds if per_seed[s][arm][key] is not None]
            row[arm] = {"mean": statistics.fmean(vals) if vals else None,
                        "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0, "values": vals}
        if all(row[arm]["mean"] is not None for arm in ARMS):  # e.g. no FID without a classifier
            table[key] = row
    first = per_seed[seeds[0]]
    return {"seeds": seeds, "dataset": dataset, "table": table,
            "fid_n": {"gmm": first["dae"]["fid_n_gmm"], "ldm": first["dae"]["fid_n_ldm"]},
            "fid_floor": {"gmm": first["dae"]["fid_floor_gmm"], "ldm": first["dae"]["fid_floor_ldm"]},
            "epochs": first["dae"]["epochs"], "hardware": first["dae"]["hardware"],
            "history": {arm: {s: per_seed[s][arm]["history"] for s in seeds} for arm in ARMS}}


def verdict(study: dict) -> list[str]:
    """One plain sentence per metric: which arm is better, by how much, and whether the gap exceeds the spread."""
    lines = []
    for key, row in study["table"].items():
        if key in ("train_s", "ldm_train_s"):
            continue
        d, j = row["dae"], row["joint"]
        better = "DAE" if (d["mean"] < j["mean"]) == row["lower_is_better"] else "joint"
        gap = abs(d["mean"] - j["mean"])
        rel = f" ({gap / abs(j['mean']) * 100:.1f}% of the baseline)" if row["lower_is_better"] and j["mean"] else ""
        if len(study["seeds"]) < 2:
            spread = "one seed, so no spread to compare with"
        else:
            spread = f"{'beyond' if gap > 2 * max(d['sd'], j['sd']) else 'within'} two standard deviations of the seeds"
        lines.append(f"{row['label']}: {better} better by {gap:.4g}{rel}, {spread}")
    return lines


def table_markdown(study: dict) -> str:
    n = len(study["seeds"])
    head = f"| metric (mean ± sd over {n} seed{'s' if n != 1 else ''}) | DAE (two stages) | joint baseline |\n|---|---|---|\n"
    body = "".join(f"| {row['label']} | {row['dae']['mean']:.4g} ± {row['dae']['sd']:.2g} | "
                   f"{row['joint']['mean']:.4g} ± {row['joint']['sd']:.2g} |\n" for row in study["table"].values())
    fid = "fid_gmm" in study["table"]
    foot = ((f"\nFID: classifier-FID at N={study['fid_n']['gmm']} (mixture, floor {study['fid_floor']['gmm']:.2f}) "
            f"and N={study['fid_n']['ldm']} (latent diffusion, DDIM-50, floor {study['fid_floor']['ldm']:.2f}); "
             if fid else "\n") + f"{study['epochs']} epochs per autoencoder on {study['hardware']}.\n\n"
            + "\n".join(f"- {line}" for line in verdict(study)) + "\n")
    return head + body + foot


def ship(study: dict, out, root=None, note: str = "") -> list[Path]:
    """Copy the first seed's four checkpoints into the shipped zoo, with the table (and ``note``, a
    paragraph reading it) in their cards."""
    out, root = Path(out), Path(root or checkpoints.ROOT)
    seed, dataset = study["seeds"][0], study["dataset"]
    written = []
    for pair in ARMS.values():
        for name in pair:
            src, dst = out / f"seed{seed}" / dataset / name, root / dataset / name
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("resume.pt"))
            (dst / STUDY).write_text(json.dumps({**study, "note": note.strip()}, indent=1) + "\n")
            cards.update_section(dst, SECTION,
                                 f"{SECTION} ({len(study['seeds'])} seeds; this checkpoint is seed {seed})\n"
                                 f"    python -m explorer.dae_study run --seeds {' '.join(map(str, study['seeds']))} "
                                 "--out runs/dae-study\n    python -m explorer.dae_study summary --out runs/dae-study "
                                 "--ship\n\n" + table_markdown(study) + (f"\n{note.strip()}\n" if note.strip() else ""))
            written.append(dst)
    return written


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m explorer.dae_study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["run", "summary"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/dae-study")
    p.add_argument("--epochs", type=int, help="autoencoder epochs (default: the presets')")
    p.add_argument("--ldm-epochs", type=int, help="latent diffusion epochs (default: the presets')")
    p.add_argument("--threads", type=int)
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                   help="train only these arms (two processes can share a seed, one arm each)")
    p.add_argument("--ship", action="store_true", help="copy the first seed into checkpoints/ with the table")
    p.add_argument("--note", help="with --ship: a text file whose paragraph (what the table says) joins the cards")
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.command == "run":
        run(a.seeds, a.out, a.epochs, a.ldm_epochs, arms=a.arms)
        return
    study = summarise(a.out)
    (Path(a.out) / STUDY).write_text(json.dumps(study, indent=1) + "\n")
    print(table_markdown(study))
    if a.ship:
        note = Path(a.note).read_text() if a.note else ""
        for d in ship(study, a.out, note=note):
            print(f"shipped {d}")


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------- a live comparison for lectures
@dataclass
class LiveRun:
    """Both arms trained from scratch for the same number of steps on the same images."""

    models: dict            # arm -> trained DAE model (eval mode, mixture fitted)
    history: dict           # arm -> list of {"step", "stage", "mse"} (training batches)
    metrics: dict           # arm -> {"test_mse", "gmm_loglik", "seconds", "steps", ...}
    steps: int
    train_images: int
    test_images: int


def train_live(x_train, x_test, budget_s: float = 40.0, seed: int = 0, config: dict | None = None,
               batch_size: int = 128, progress=None, classifier=None) -> LiveRun:
    """Train the joint baseline for half of ``budget_s`` seconds, then the DAE for the same number of
    steps (half in each stage), both from the same initial weights and batch order; fit each one's
    mixture prior and measure held-out reconstruction MSE, mixture log-likelihood per dimension and,
    with a ``classifier``, classifier-FID of mixture samples with its real-vs-real floor.
    ``progress(fraction, text)`` is called as it goes."""
    import torch

    cfg = {"latent_dim": 16, "channels": 16, "hidden": 256, **(config or {})}
    say = progress or (lambda f, text: None)
    history, results, trained = {}, {}, {}
    steps = None
    for arm in ("joint", "dae"):
        with torch.random.fork_rng():  # the same initial encoder and decoder in both arms, and the same
            torch.manual_seed(seed)     # dropout masks on a rerun, without moving the process-wide generator
            model, hist, seconds = _train_arm(arm, cfg, x_train, budget_s / 2, steps, seed, batch_size, say)
            results[arm] = _live_metrics(model, x_train, x_test, classifier, seed)
        results[arm].update({"seconds": round(seconds, 1), "steps": len(hist)})
        steps = steps or len(hist)
        history[arm], trained[arm] = hist, model
    say(1.0, "done")
    return LiveRun(trained, history, results, steps, len(x_train), len(x_test))


def _train_arm(arm, cfg, x_train, seconds, steps, seed, batch_size, say):
    """The joint arm trains for ``seconds``; the DAE arm for ``steps`` (half in each stage)."""
    import time

    import torch

    from . import models

    model = models.build("dae", {**cfg, "mode": "joint" if arm == "joint" else "decoupled"})
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(seed)  # the same batches in both arms
    hist, t0 = [], time.perf_counter()
    model.train()
    while True:
        step = len(hist)
        if (arm == "joint" and time.perf_counter() - t0 > seconds and step >= 4) or (arm == "dae" and step >= steps):
            break
        if arm == "dae" and model.stage != (stage := 1 if step < steps // 2 else 2):
            model.set_stage(stage)
        idx = torch.randint(0, len(x_train), (min(batch_size, len(x_train)),), generator=order)
        loss, logs = model((x_train[idx], None))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.append({"step": step + 1, "stage": model.stage, "mse": logs["mse"]})
        if (step + 1) % 5 == 0:
            done = (time.perf_counter() - t0) / seconds if arm == "joint" else (step + 1) / steps
            say(0.5 * min(done, 1.0) + (0.5 if arm == "dae" else 0.0),
                f"{'joint baseline' if arm == 'joint' else f'DAE stage {model.stage}'}: step {step + 1}")
    elapsed = time.perf_counter() - t0
    return model.eval(), hist, elapsed


def _live_metrics(model, x_train, x_test, classifier, seed) -> dict:
    import torch

    from . import metrics

    with torch.no_grad():
        model.fit_prior(model.encode(x_train), random_state=seed)
        extra = model.extra_metrics(x_test)  # the family's own: mixture log-likelihood, stage-1 MSE
        res = {"test_mse": float(metrics.reconstruction_mse(model, x_test)),
               "gmm_loglik": extra.pop("prior_loglik_per_dim"), **extra}
        if classifier is not None:
            k = min(len(x_test), len(x_train), 1000)
            samples = model.sample(k, generator=torch.Generator().manual_seed(1234))
            res.update(metrics.fid_with_floor(classifier, samples, x_test[:k], x_train[:k]))
    return res
