"""The multi-seed studies the seed papers ask for, behind one resumable, time-boxed command.

    python -m explorer.studies run dae --threads 1                   # the DAE against its joint baseline (arXiv 2307.08283)
    python -m explorer.studies run gamix --hours 2 --threads 1       # GAMIX-VAE ablation (arXiv 2309.13160)
    python -m explorer.studies run dae-sweep --hours 2 --threads 1   # where decoupling helps (arXiv 2307.08283)
    python -m explorer.studies status gamix                          # what is done, what is left
    python -m explorer.studies summary gamix --ship                  # table + chart into the shipped cards

A study is a list of runs, one per (arm, seed); a run trains one or two presets (an autoencoder, then the
latent diffusion on its codes) into its own checkpoint root ``runs/<study>/<arm>/seed<k>/``. Every arm of a
study trains the same number of epochs on the same images. ``run`` works through the runs seed by seed,
skipping finished ones and resuming an interrupted one from its ``resume.pt``; with ``--hours`` it starts
no new epoch after that time, so it can run in the background and continue in a later session. Two
processes may share a study: each run is locked (``flock``) while one trains it.

``runs/`` is not shipped, but the study's result file is (``sweep.json``, ``ablation.json``) and it holds every
finished run's figures. The command line takes that record as finished runs (``--fresh`` ignores it), so a
fresh checkout continues a study where it shipped: ``status`` counts, ``run`` skips and ``summary`` includes
the recorded runs, except an arm whose definition (preset, config, epochs, latent diffusion) has changed since.

``summary`` reads the finished runs back from their ``config.json`` and ``metrics.json``, gives mean and
sample standard deviation over seeds per arm and metric, a plain verdict per metric, and a chart; with
``--ship`` it writes them into the shipped checkpoints' folders (``study.json`` beside the four DAE-study
checkpoints, ``ablation.json`` beside ``gamix-vae-16``, ``sweep.json`` beside ``dae-16``) and cards. The DAE
study also ships its first seed's checkpoints themselves: the zoo's ``dae-16``, ``dae-16-joint`` and their
latent diffusion models are that seed's.
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cards, checkpoints

DATASET = "fashion-mnist"


@dataclass(frozen=True)
class Arm:
    """One arm: a preset with config overrides, trained ``epochs``; then, optionally, a latent diffusion
    preset on its codes for ``ldm_epochs``."""

    name: str
    label: str
    preset: str
    config: dict = field(default_factory=dict)
    epochs: int = 8
    ldm: str | None = None
    ldm_epochs: int = 0
    group: dict = field(default_factory=dict)   # where the arm sits in the study's chart (e.g. level, stage 2)
    keep_epochs: tuple = ()       # keep the state after these epochs, for arms that start from it
    start_from: tuple | None = None  # (arm, epoch): start from that arm's kept state (same seed), not from scratch

    def steps(self) -> list[tuple[str, dict, int]]:
        """(preset, config overrides, epochs) in the order they train."""
        return [(self.preset, self.config, self.epochs)] + ([(self.ldm, {}, self.ldm_epochs)] if self.ldm else [])


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    arms: tuple
    seeds: tuple = (0, 1, 2)
    dataset: str = DATASET
    result_file: str = "study.json"
    ship_to: tuple = ()           # the shipped checkpoints whose folder and card get the results
    rows: tuple = ()              # (key, label, lower is better?)
    why: str = ""                 # what the epochs were chosen for (the card says it)
    ship_checkpoints: bool = False  # ship also copies the first seed's checkpoints of ship_to into the zoo

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def runs(self) -> list[tuple[Arm, int]]:
        """Seed-major: after each seed, every arm has one finished run to compare."""
        return [(arm, seed) for seed in self.seeds for arm in self.arms]


# ---------------------------------------------------------------- the DAE against its joint baseline
# Both autoencoders (dae-16: two stages; dae-16-joint: the same encoder and decoder trained together, same
# epochs, data and latent shape), and on each latent both generators: the Gaussian mixture inside the
# autoencoder checkpoint, and latent diffusion.
DAE_PAIR_ROWS = (
    ("test_mse", "reconstruction MSE (test)", True),
    ("fid_gmm", "FID, Gaussian-mixture samples", True),
    ("fid_ldm", "FID, latent-diffusion samples", True),
    ("gmm_loglik", "mixture held-out log-lik / dim", False),
    ("ldm_eps_mse", "latent diffusion held-out eps-MSE", True),
    ("linear_probe", "linear-probe accuracy", False),
    ("train_s", "autoencoder training (s)", True),
    ("ldm_train_s", "latent diffusion training (s)", True),
)
DAE = Study(
    name="dae", title="DAE vs joint baseline", result_file="study.json",
    ship_to=("dae-16", "dae-16-joint", "ldm-dae-16", "ldm-dae-16-joint"), ship_checkpoints=True,
    rows=DAE_PAIR_ROWS,
    arms=(Arm("dae", "DAE (two stages)", "dae-16", epochs=10, ldm="ldm-dae-16", ldm_epochs=20),
          Arm("joint", "joint baseline", "dae-16-joint", epochs=10, ldm="ldm-dae-16-joint", ldm_epochs=20)),
    why="The shipped presets' epochs: 10 per autoencoder (the DAE's 5 in stage 1 and 5 in stage 2), 20 for each "
        "latent diffusion model, on all 60,000 training images.",
)

# ---------------------------------------------------------------- the GAMIX-VAE ablation
GAMIX_EPOCHS = 8
GAMIX_ROWS = (
    ("fid", "classifier-FID of prior samples (N = 5,000)", True),
    ("test_mse", "test reconstruction MSE", True),
    ("elbo", "test ELBO (nats)", False),
    ("iw_nll", "IW-NLL, 100 samples (nats)", True),
    ("recon_sharpness", "sharpness of reconstructions (real = 1)", False),
    ("sample_sharpness", "sharpness of prior samples (real = 1)", False),
    ("pi_entropy", "mean entropy of pi(x) (nats)", False),
    ("components_used", "components with mean weight > 5%", False),
    ("sigma_min", "smallest component sigma", False),
    ("train_s", "training time (s)", True),
)
MIXTURE_ARMS = ("mixture", "mixture-noreg", "both", "both-noreg")  # each with and without the regulariser
GAMIX = Study(
    name="gamix", title="GAMIX-VAE ablation", result_file="ablation.json",
    ship_to=("gamix-vae-16",), rows=GAMIX_ROWS,
    arms=(
        Arm("vae", "plain VAE", "vae-16", epochs=GAMIX_EPOCHS),
        Arm("patchgan", "+ PatchGAN", "vae-16-patchgan", epochs=GAMIX_EPOCHS),
        Arm("mixture", "+ mixture", "gmm-vae-16", epochs=GAMIX_EPOCHS),
        Arm("both", "+ mixture + PatchGAN (GAMIX-VAE)", "gamix-vae-16", epochs=GAMIX_EPOCHS),
        Arm("mixture-noreg", "+ mixture, no regulariser", "gmm-vae-16", {"var_reg": 0.0}, GAMIX_EPOCHS),
        Arm("both-noreg", "+ mixture + PatchGAN, no regulariser", "gamix-vae-16", {"var_reg": 0.0}, GAMIX_EPOCHS),
    ),
    why=f"{GAMIX_EPOCHS} epochs per arm on all 60,000 training images; the PatchGAN term starts at epoch 2 as in "
        "the shipped presets. Measured at one torch thread per run, beside one other run: a plain-VAE run takes "
        "10 min with its evaluation, the PatchGAN and mixture arms 15-30 min, about 1.9 h per seed and ~6 "
        "core-hours for three seeds; with the sweep, about the issue's 12 CPU-hours.",
)

# ---------------------------------------------------------------- where decoupling helps
# The stage-1 decoder, from very weak to the real decoder's own architecture (where stage 1 is joint training).
DAE_LEVELS = (
    ("very weak", {"aux_channels": 1, "aux_hidden": 16, "aux_dropout": 0.5}),
    ("weak (shipped)", {"aux_channels": 4, "aux_hidden": 64, "aux_dropout": 0.25}),
    ("medium", {"aux_channels": 8, "aux_hidden": 128, "aux_dropout": 0.1}),
    ("as the real decoder", {"aux_channels": 16, "aux_hidden": 256, "aux_dropout": 0.0}),
)
DAE_STAGE1, DAE_STAGE2, DAE_LDM_EPOCHS = 5, (5, 15), 10
DAE_ROWS = (
    ("fid_gmm", "FID, Gaussian-mixture samples", True),
    ("fid_ldm", "FID, latent-diffusion samples", True),
    ("test_mse", "reconstruction MSE (test)", True),
    ("gmm_loglik", "mixture held-out log-lik / dim", False),
    ("ldm_eps_mse", "latent diffusion held-out eps-MSE", True),
    ("train_s", "training time (s)", True),
)


def _dae_arms() -> tuple:
    arms = []
    first = DAE_STAGE2[0]
    for s2 in DAE_STAGE2:
        total = DAE_STAGE1 + s2
        for i, (label, aux) in enumerate(DAE_LEVELS):
            # Stage 1 is the same whatever stage 2's length (the same init, batches, dropout draws and per-stage
            # learning-rate cosine): the longer stage 2 starts from the first arm's state after stage 1.
            arms.append(Arm(f"dae-l{i}-s{s2}", f"DAE, stage-1 decoder {label}, stage 2 {s2} epochs", "dae-16",
                            {**aux, "stage1_fraction": DAE_STAGE1 / total}, total, "ldm-dae-16", DAE_LDM_EPOCHS,
                            {"level": i, "stage2": s2},
                            keep_epochs=(DAE_STAGE1,) if s2 == first else (),
                            start_from=(f"dae-l{i}-s{first}", DAE_STAGE1) if s2 != first else None))
        arms.append(Arm(f"joint-s{s2}", f"joint baseline, {total} epochs", "dae-16-joint", {}, total,
                        "ldm-dae-16-joint", DAE_LDM_EPOCHS, {"level": None, "stage2": s2}))
    return tuple(arms)


DAE_SWEEP = Study(
    name="dae-sweep", title="Where decoupling helps", result_file="sweep.json",
    ship_to=("dae-16",), rows=DAE_ROWS, arms=_dae_arms(),
    why=f"stage 1 {DAE_STAGE1} epochs (as the shipped study), stage 2 {' or '.join(map(str, DAE_STAGE2))}; the "
        f"joint baseline gets the same total epochs; latent diffusion {DAE_LDM_EPOCHS} epochs on each latent "
        "(half the shipped 20). Measured at one torch thread per run, beside one other run: a seed's five 5 + 5 "
        "arms take 48 min and its five 5 + 15 arms ~1.5 h, ~7 core-hours for three seeds.",
)

STUDIES = {s.name: s for s in (DAE, GAMIX, DAE_SWEEP)}


# ---------------------------------------------------------------- running
def run_dir(out, arm: Arm, seed: int) -> Path:
    return Path(out) / arm.name / f"seed{seed}"


def shipped_record(study: Study, root=None) -> Path:
    """Where the study's result file ships: beside its first shipped checkpoint."""
    return Path(root or checkpoints.ROOT) / study.dataset / study.ship_to[0] / study.result_file


def _definition(arm: dict) -> dict:
    """What makes two runs of an arm comparable, as the result file records it."""
    return json.loads(json.dumps({k: arm.get(k) for k in ("preset", "config", "epochs", "ldm", "ldm_epochs")}))


def recorded_runs(study: Study, record) -> dict[tuple[str, int], dict]:
    """{(arm, seed): that run's figures} from a result file ``summary`` wrote (``None`` or a missing file:
    none). An arm whose recorded definition differs from the study's now is left out: it has to run again."""
    if record is None or not Path(record).is_file():
        return {}
    try:
        data = json.loads(Path(record).read_text())
        arms, runs = {a["name"]: a for a in data["arms"]}, data["runs"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{record} is not a study result file ({type(err).__name__}: {err}); "
                         f"restore it with `git checkout -- {record}` or pass --fresh to ignore it") from None
    if data.get("study") != study.name or data.get("dataset") != study.dataset:
        return {}
    same = [a for a in study.arms if a.name in arms
            and _definition(arms[a.name]) == _definition(dataclasses.asdict(a))]
    return {(a.name, int(s)): row for a in same for s, row in runs.get(a.name, {}).items() if int(s) in study.seeds}


def finished(out, study: Study, arm: Arm, seed: int) -> bool:
    root = run_dir(out, arm, seed) / study.dataset
    return all((root / preset / checkpoints.METRICS).is_file() for preset, _, _ in arm.steps())


def run(study: Study, out, hours: float | None = None, progress: bool = True, limit: int | None = None,
        config: dict | None = None, seeds=None, arms=None, record=None) -> dict:
    """Train and evaluate the study's runs in order, skipping finished ones, the ones ``record`` (a result
    file) holds, and any another process holds; returns {"done": [...], "left": [...]} (run keys). ``limit``
    and ``config`` (overrides for every autoencoder) make tiny runs for tests; ``seeds`` and ``arms`` restrict
    the runs."""
    from . import training

    deadline = time.time() + hours * 3600 if hours else None
    out = Path(out)
    recorded = recorded_runs(study, record)
    for arm, seed in study.runs():
        if (arm.name, seed) in recorded:
            continue
        if (seeds is not None and seed not in seeds) or (arms is not None and arm.name not in arms):
            continue
        if deadline is not None and time.time() >= deadline:
            break
        if finished(out, study, arm, seed):
            continue
        root = run_dir(out, arm, seed)
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process trains this run
                continue
            for i, (preset, overrides, epochs) in enumerate(arm.steps()):
                if (root / study.dataset / preset / checkpoints.METRICS).is_file():
                    continue
                if i == 0 and arm.start_from:
                    _start_from(study, out, arm, seed)
                cfg = {**overrides, **(config or {})} if i == 0 else overrides
                training.train(preset, study.dataset, epochs=epochs, out=root, seed=seed, resume=True,
                               progress=progress, limit=limit, config=cfg or None, deadline=deadline,
                               command=_command(study, arm, seed), keep_epochs=arm.keep_epochs if i == 0 else ())
                if not (root / study.dataset / preset / checkpoints.METRICS).is_file():
                    break  # the time box ended inside this run
        if progress and finished(out, study, arm, seed):
            print(f"{study.name}: finished {arm.name} seed {seed}", flush=True)
    return _status(study, out, recorded, seeds, arms)


def _start_from(study: Study, out, arm: Arm, seed: int) -> bool:
    """Seed ``arm``'s resume.pt with the state its ``start_from`` arm kept, unless it has its own already;
    True when it did. Without that state (not run yet, or run elsewhere) the arm trains from scratch."""
    other, epoch = arm.start_from
    own = run_dir(out, arm, seed) / study.dataset / arm.preset / "resume.pt"
    kept = run_dir(out, study.arm(other), seed) / study.dataset / study.arm(other).preset / f"resume-epoch{epoch}.pt"
    if own.is_file() or not kept.is_file():
        return False
    own.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kept, own)
    return True


def _command(study: Study, arm: Arm, seed: int) -> str:
    return f"python -m explorer.studies run {study.name} --arms {arm.name} --seeds {seed}"


def status(study: Study, out, seeds=None, arms=None, record=None) -> dict:
    return _status(study, out, recorded_runs(study, record), seeds, arms)


def _status(study: Study, out, recorded: dict, seeds=None, arms=None) -> dict:
    """:func:`status` with the record already read (``recorded_runs``)."""
    runs = [(a, s) for a, s in study.runs() if (seeds is None or s in seeds) and (arms is None or a.name in arms)]
    done = [f"{a.name}/seed{s}" for a, s in runs if (a.name, s) in recorded or finished(out, study, a, s)]
    return {"done": done, "left": [f"{a.name}/seed{s}" for a, s in runs if f"{a.name}/seed{s}" not in done]}


# ---------------------------------------------------------------- reading back
def run_results(study: Study, out, arm: Arm, seed: int) -> dict:
    """One finished run's figures, from its checkpoints' config.json and metrics.json."""
    zoo = checkpoints.Zoo(run_dir(out, arm, seed))
    ae = zoo.info(f"{study.dataset}/{arm.preset}")
    m, t = ae["metrics"], ae["training"]
    row = {k: m.get(k) for k in ("fid", "fid_floor", "fid_n", "test_mse", "elbo", "iw_nll", "recon_sharpness",
                                 "sample_sharpness", "pi_entropy", "components_used", "pi_mean",
                                 "sigma_per_component", "linear_probe")}
    row["fid_gmm"] = m.get("fid")
    row["gmm_loglik"] = m.get("prior_loglik_per_dim")
    if row["sigma_per_component"]:
        row["sigma_min"] = min(row["sigma_per_component"])
    row["train_s"] = t["wall_time_s"]
    row["epochs"], row["hardware"] = t["epochs"], t["hardware"]
    row["history"] = t["history"]  # the autoencoder's per-epoch training record (the DAE panel's curves)
    sig = sorted(k for k in (t["history"][0] if t["history"] else {}) if k.startswith("sigma_"))
    if sig:  # each component's mean sigma at the end of every epoch
        row["sigma_history"] = [[e[k] for k in sig] for e in t["history"]]
    if arm.ldm:
        ldm = zoo.info(f"{study.dataset}/{arm.ldm}")
        row["fid_ldm"] = ldm["metrics"].get("fid")
        row["fid_floor_ldm"], row["fid_n_ldm"] = ldm["metrics"].get("fid_floor"), ldm["metrics"].get("fid_n")
        row["ldm_eps_mse"] = ldm["metrics"].get("test_eps_mse")
        row["ldm_train_s"] = ldm["training"]["wall_time_s"]
    return {k: v for k, v in row.items() if v is not None}


def summarise(study: Study, out, record=None) -> dict:
    """Mean and sample sd over the finished seeds, per arm and metric, with every run's own figures: the runs
    finished under ``out`` and those ``record`` (a result file) holds; a run in both is read from ``out``."""
    recorded = recorded_runs(study, record)
    per_run = {}
    for a in study.arms:
        per_run[a.name] = {}
        for s in study.seeds:
            if finished(out, study, a, s):
                per_run[a.name][s] = run_results(study, out, a, s)
            elif (a.name, s) in recorded:
                per_run[a.name][s] = recorded[a.name, s]
    if not any(per_run.values()):
        raise FileNotFoundError(f"no finished run under {out}; run `python -m explorer.studies run {study.name}` first")
    table = {}
    for key, label, lower in study.rows:
        row = {"label": label, "lower_is_better": lower}
        for a in study.arms:
            vals = [r[key] for r in per_run[a.name].values() if key in r]
            row[a.name] = {"mean": statistics.fmean(vals) if vals else None,
                           "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0, "values": vals}
        table[key] = row
    any_run = next(r for runs in per_run.values() for r in runs.values())
    left = _status(study, out, recorded)["left"]
    return {"study": study.name, "title": study.title, "dataset": study.dataset, "why": study.why,
            "seeds": sorted({s for runs in per_run.values() for s in runs}),
            "history": {a: {str(s): r["history"] for s, r in runs.items() if "history" in r}
                        for a, runs in per_run.items()},
            "arms": [{"name": a.name, "label": a.label, "preset": a.preset, "config": a.config, "epochs": a.epochs,
                      "ldm": a.ldm, "ldm_epochs": a.ldm_epochs, "group": a.group,
                      "seeds": sorted(per_run[a.name])} for a in study.arms],
            "runs_done": len(study.runs()) - len(left), "runs_total": len(study.runs()), "left": left,
            "hardware": any_run.get("hardware"), "fid_n": any_run.get("fid_n"), "fid_floor": any_run.get("fid_floor"),
            "fid_n_ldm": any_run.get("fid_n_ldm"), "fid_floor_ldm": any_run.get("fid_floor_ldm"),
            "table": table, "runs": {a: {str(s): r for s, r in runs.items()} for a, runs in per_run.items()}}


def _fid_note(summary: dict) -> str:
    """The sentence that says how the study's FIDs were measured (N and floor), or "" without FIDs."""
    if not summary.get("fid_n"):
        return ""
    ldm = (f"; latent diffusion samples DDIM-50 at N = {summary['fid_n_ldm']:,} (floor {summary['fid_floor_ldm']:.2f})"
           if summary.get("fid_n_ldm") else "")
    return (f" FID: in-project classifier-FID, samples at N = {summary['fid_n']:,} (real-vs-real floor "
            f"{summary['fid_floor']:.2f}){ldm}.")


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.4g}"


def _cell(cell: dict) -> str:
    n = len(cell["values"])
    if not n:
        return "–"
    return f"{_fmt(cell['mean'])} ± {cell['sd']:.2g}" if n > 1 else f"{_fmt(cell['mean'])} (1 seed)"


def _compare(row: dict, a: str, b: str, words=("better", "worse")) -> str | None:
    """'better by X (beyond 2 sd / not settled)': arm a against arm b; None without figures for both.
    ``words``: what a gap in the metric's good and bad direction is called (e.g. "higher", "lower")."""
    x, y = row.get(a) or {}, row.get(b) or {}
    if x.get("mean") is None or y.get("mean") is None:
        return None
    gap = x["mean"] - y["mean"]
    better = (gap < 0) == row["lower_is_better"]
    if gap == 0:
        return "no difference"
    sd = max(x["sd"], y["sd"])
    n = min(len(x["values"]), len(y["values"]))
    sure = ("one seed, no spread yet" if n < 2 else
            "beyond 2 sd of the seeds" if abs(gap) > 2 * sd else "not settled: within 2 sd")
    return f"{words[0] if better else words[1]} by {abs(gap):.3g} ({sure})"


def verdict(summary: dict) -> list[str]:
    """A plain sentence per metric."""
    return {"dae": _pair_verdict, "gamix": _gamix_verdict}.get(summary["study"], _sweep_verdict)(summary)


def _pair_verdict(summary: dict) -> list[str]:
    """The DAE study: the DAE against the joint baseline, per metric (training times left out)."""
    lines = []
    for key, row in summary["table"].items():
        c = _compare(row, "dae", "joint")
        if c and not key.endswith("train_s"):
            lines.append(f"{row['label']}: DAE {c}")
    return lines


def _gamix_verdict(summary: dict) -> list[str]:
    lines = []
    for key, row in summary["table"].items():
        if key == "train_s":
            continue
        have = [a for a in ("vae", "patchgan", "mixture", "both") if (row.get(a) or {}).get("mean") is not None]
        if not have:
            continue
        if key in ("pi_entropy", "components_used", "sigma_min"):
            parts = [f"{summary_label(summary, a)}: {_fmt(row[a]['mean'])}"
                     for a in MIXTURE_ARMS if (row.get(a) or {}).get("mean") is not None]
            reg = [f"{what} {c}" for what, c in (
                ("without PatchGAN", _compare(row, "mixture", "mixture-noreg", ("higher", "lower"))),
                ("with PatchGAN", _compare(row, "both", "both-noreg", ("higher", "lower")))) if c]
            lines.append(f"{row['label']}: " + ", ".join(parts)
                         + (f". The regulariser on against off: {'; '.join(reg)}" if reg else ""))
            continue
        best = (min if row["lower_is_better"] else max)(have, key=lambda a: row[a]["mean"])
        effects = [f"{what} {c}" for what, c in (
            ("the mixture alone", _compare(row, "mixture", "vae")),
            ("PatchGAN alone", _compare(row, "patchgan", "vae")),
            ("GAMIX-VAE against the plain VAE", _compare(row, "both", "vae")),
            ("GAMIX-VAE against + PatchGAN", _compare(row, "both", "patchgan"))) if c]
        label = summary_label(summary, best)
        lines.append(f"{row['label']}: best is {label} ({_fmt(row[best]['mean'])}); " + "; ".join(effects))
    return lines


def summary_label(summary: dict, name: str) -> str:
    return next(a["label"] for a in summary["arms"] if a["name"] == name)


def _sweep_verdict(summary: dict) -> list[str]:
    lines = []
    for key, row in summary["table"].items():
        if key == "train_s":
            continue
        for s2 in DAE_STAGE2:
            joint = f"joint-s{s2}"
            parts = []
            for i, (label, _) in enumerate(DAE_LEVELS):
                c = _compare(row, f"dae-l{i}-s{s2}", joint)
                if c:
                    parts.append(f"{label}: DAE {c}")
            if parts:
                lines.append(f"{row['label']}, stage 2 {s2} epochs, against the joint baseline: " + "; ".join(parts))
    return lines


def table_markdown(summary: dict) -> str:
    """The study's table (mean ± sd over seeds), what it rests on, and a verdict per metric."""
    if summary["study"] == "dae-sweep":
        return sweep_table_markdown(summary) + "\n" + "\n".join(f"- {line}" for line in verdict(summary)) + "\n"
    arms = summary["arms"]
    n = max((len(a["seeds"]) for a in arms), default=0)
    head = ("| metric (mean ± sd over seeds) | " + " | ".join(a["label"] for a in arms) + " |\n"
            + "|---" * (len(arms) + 1) + "|\n")
    body = "".join(f"| {row['label']} | " + " | ".join(_cell(row[a["name"]]) for a in arms) + " |\n"
                   for row in summary["table"].values())
    seeds = "| seeds finished | " + " | ".join(str(len(a["seeds"])) for a in arms) + " |\n"
    foot = (f"\n{summary['runs_done']} of {summary['runs_total']} runs finished (up to {n} seed{'s' if n != 1 else ''} per arm), on "
            f"{summary['hardware']}. {summary['why']}")
    return head + body + seeds + foot + _fid_note(summary) + "\n\n" + "\n".join(f"- {line}" for line in verdict(summary)) + "\n"


# ---------------------------------------------------------------- shipping
SECTIONS = {"dae": "## DAE vs joint baseline", "gamix": "## GAMIX-VAE ablation",
            "dae-sweep": "## Where decoupling helps: the sweep"}
CHARTS = {"gamix": "ablation_sigma.png", "dae-sweep": "sweep.png"}  # the DAE study has none: the panel draws its curves


def chart(summary: dict):
    """The study's figure: the GAMIX ablation's component sigma per epoch, with and without the regulariser;
    the DAE sweep's metrics against the stage-1 decoder's capacity."""
    from . import plotting

    if summary["study"] not in CHARTS:
        return None
    if summary["study"] == "gamix":
        arms = {a["name"]: a["label"] for a in summary["arms"]}
        return plotting.sigma_per_epoch({arms[name]: [r.get("sigma_history") for r in summary["runs"][name].values()]
                                         for name in MIXTURE_ARMS if name in arms})
    return plotting.sweep_chart(summary, [label for label, _ in DAE_LEVELS], DAE_STAGE2, DAE_STAGE1)


def ship(summary: dict, root=None, note: str = "", out=None) -> list[Path]:
    """Write the summary (``study.json`` / ``ablation.json`` / ``sweep.json``), its chart and a card section into
    each shipped checkpoint the study belongs to; for a study that ships its checkpoints, first copy the first
    seed's from ``out`` (where the runs are) into the zoo."""
    study, dataset = STUDIES[summary["study"]], summary["dataset"]
    root = Path(root or checkpoints.ROOT)
    fig = chart(summary)
    if study.ship_checkpoints:
        _ship_checkpoints(study, summary, out, root)
    written = []
    for name in study.ship_to:
        dst = root / dataset / name
        if not dst.is_dir():
            command = checkpoints.rebuild_command(f"{dataset}/{name}")
            raise checkpoints.CheckpointError(f"{dataset}/{name} is not in the zoo to ship the {study.title} "
                                              f"into; build it with `{command}`")
        cards.write_atomic(dst / study.result_file, json.dumps({**summary, "note": note.strip()}, indent=1) + "\n")
        if fig is not None:
            fig.savefig(dst / CHARTS[study.name], dpi=90, bbox_inches="tight")
        seed = (f" (this checkpoint is seed {summary['seeds'][0]} of the study)"
                if study.ship_checkpoints and summary["seeds"] else "")
        section = (f"{SECTIONS[study.name]}{seed}\n    python -m explorer.studies run {study.name} --hours 2\n"
                   f"    python -m explorer.studies summary {study.name} --ship\n\n"
                   + table_markdown(summary)
                   + (f"\n![{study.title}]({CHARTS[study.name]})\n" if fig is not None else "")
                   + (f"\n{note.strip()}\n" if note.strip() else ""))
        cards.update_section(dst, SECTIONS[study.name], section)
        written.append(dst)
    return written


def _ship_checkpoints(study: Study, summary: dict, out, root: Path) -> None:
    """Replace the zoo's checkpoints of ``study.ship_to`` with the first seed's runs finished under ``out``
    (without resume files). A run that is not there (a summary read from the shipped record) leaves the zoo's
    checkpoint, which is that run."""
    seed, dataset = summary["seeds"][0], summary["dataset"]
    for arm in study.arms:
        for preset, _, _ in arm.steps():
            src, dst = run_dir(out or ".", arm, seed) / dataset / preset, root / dataset / preset
            if preset not in study.ship_to or out is None or not (src / checkpoints.METRICS).is_file():
                continue
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("resume*.pt", ".lock"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m explorer.studies", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["run", "status", "summary", "sampling"],
                   help="sampling: prior against aggregate-posterior samples of the shipped 16-D VAEs (no study)")
    p.add_argument("study", nargs="?", choices=sorted(STUDIES))
    p.add_argument("--out", help="where the runs live (default: runs/<study>)")
    p.add_argument("--hours", type=float, help="start no new epoch after this long (resume later)")
    p.add_argument("--threads", type=int)
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--arms", nargs="+")
    p.add_argument("--ship", action="store_true", help="write the results into the shipped checkpoints' folders")
    p.add_argument("--note", help="with --ship: a text file whose paragraph (what the table says) joins the cards")
    p.add_argument("--fresh", action="store_true",
                   help="ignore the runs the shipped result file records (default: count them as finished)")
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.command == "sampling":
        result, priors = sampling()
        print(sampling_markdown(result))
        if a.ship:
            print(f"shipped {ship_sampling(result, priors)}")
        return
    if a.study is None:
        p.error(f"{a.command} needs a study: one of {sorted(STUDIES)}")
    study = STUDIES[a.study]
    out = Path(a.out or f"runs/{study.name}")
    record = None if a.fresh else shipped_record(study)
    if a.arms and (bad := set(a.arms) - {x.name for x in study.arms}):
        p.error(f"unknown arm(s) {sorted(bad)}; {study.name} has {[x.name for x in study.arms]}")
    if a.command == "run":
        print(json.dumps(run(study, out, a.hours, seeds=a.seeds, arms=a.arms, record=record)))
    elif a.command == "status":
        st = status(study, out, record=record)
        print(f"{len(st['done'])} of {len(st['done']) + len(st['left'])} runs finished\n"
              f"done: {' '.join(st['done']) or '-'}\nleft: {' '.join(st['left']) or '-'}")
    else:
        summary = summarise(study, out, record=record)
        out.mkdir(parents=True, exist_ok=True)
        cards.write_atomic(out / study.result_file, json.dumps(summary, indent=1) + "\n")
        print(table_markdown(summary))
        if a.ship:
            note = Path(a.note).read_text() if a.note else ""
            for d in ship(summary, note=note, out=out):
                print(f"shipped {d}")



# ---------------------------------------------------------------- how a mixture-posterior VAE samples
SAMPLING_MODELS = ("vae-16", "vae-16-patchgan", "gmm-vae-16", "gamix-vae-16")
SAMPLING_SECTION = "## Sampling: the prior or the aggregate posterior"
SAMPLING_FILE = "sampling.json"


def sampling(root=None, dataset: str = DATASET, names=SAMPLING_MODELS, n: int = 5000, components: int = 10):
    """Classifier-FID of each 16-D VAE's samples two ways, at the same N: from the prior N(0, I) (the card's
    ``fid``) and from a Gaussian mixture fitted to its aggregate posterior
    (:func:`explorer.evaluation.aggregate_posterior_fid`). Returns (the figures, {name: the fitted
    :class:`explorer.latents.AggregatePrior`})."""
    from . import data, evaluation

    zoo = checkpoints.Zoo(root)
    test, train = data.load(dataset, "test").floats(), data.load(dataset, "train").floats()
    clf = evaluation.classifier(dataset, root, "cpu")
    if clf is None:
        raise checkpoints.CheckpointError(f"the FID needs {dataset}/classifier; build it with "
                                          f"`{checkpoints.rebuild_command(f'{dataset}/classifier')}`")
    rows, priors = {}, {}
    for name in names:
        model = zoo.load(f"{dataset}/{name}", device="cpu")
        prior = evaluation.recipe_fid(model, "vae", clf, test, train, n)
        agg, priors[name] = evaluation.aggregate_posterior_fid(model, clf, test, train, n, components)
        rows[name] = {"prior": {k: prior[k] for k in ("fid", "fid_floor", "fid_n", "sample_sharpness")}, "aggregate": agg}
    return {"dataset": dataset, "n": n, "components": components, "models": rows,
            "hardware": evaluation.hardware("cpu")}, priors


def sampling_markdown(result: dict) -> str:
    rows = result["models"]
    head = ("| | " + " | ".join(f"`{m}`" for m in rows) + " |\n|---" + "|---" * len(rows) + "|\n")
    line = lambda label, f: f"| {label} | " + " | ".join(f(r) for r in rows.values()) + " |\n"  # noqa: E731
    body = (line("FID, prior N(0, I) samples", lambda r: f"{r['prior']['fid']:.1f}")
            + line(f"FID, aggregate-posterior samples ({result['components']}-Gaussian mixture)",
                   lambda r: f"{r['aggregate']['fid']:.1f}")
            + line("sharpness of samples, prior / aggregate (real = 1)",
                   lambda r: f"{r['prior']['sample_sharpness']:.2f} / {r['aggregate']['sample_sharpness']:.2f}"))
    first = next(iter(rows.values()))
    gains = {m: 1 - r["aggregate"]["fid"] / r["prior"]["fid"] for m, r in rows.items()}
    best = min(rows, key=lambda m: rows[m]["aggregate"]["fid"])
    return (head + body + f"\nClassifier-FID at N = {result['n']:,} (real-vs-real floor {first['prior']['fid_floor']:.2f}), "
            f"the same seeds and test images both ways, on {result['hardware']}.\n\n"
            + "- " + "; ".join(f"`{m}`: the aggregate posterior {'lowers' if g > 0 else 'raises'} FID by "
                               f"{abs(g) * 100:.0f}%" for m, g in gains.items())
            + f".\n- Best samples of the four: `{best}` from its aggregate posterior "
              f"({rows[best]['aggregate']['fid']:.1f}).\n")


def ship_sampling(result: dict, priors: dict, root=None, name: str = "gamix-vae-16") -> Path:
    """Write the sampling comparison into ``name``'s folder (sampling.json) and card, and each model's fitted
    aggregate prior beside its weights (``aggregate_prior.json``: what the Model zoo samples from on request)."""
    root = Path(root or checkpoints.ROOT)
    for model, prior in priors.items():
        cards.write_atomic(root / result["dataset"] / model / checkpoints.AGGREGATE_PRIOR, json.dumps(prior.to_dict()) + "\n")
    dst = root / result["dataset"] / name
    cards.write_atomic(dst / SAMPLING_FILE, json.dumps(result, indent=1) + "\n")
    cards.update_section(dst, SAMPLING_SECTION, f"{SAMPLING_SECTION}\n    python -m explorer.studies sampling --ship\n\n"
                         "The cards' FID samples every VAE from its prior N(0, I). The mixture posterior does not make "
                         "the aggregate posterior N(0, I) either, so here each model is also sampled from a Gaussian "
                         "mixture fitted to one posterior draw per training image (shipped beside each model as "
                         "`aggregate_prior.json`; the Model zoo samples from it on request).\n\n" + sampling_markdown(result))
    return dst


# ---------------------------------------------------------------- what the panels say
def where_decoupling_helps(summary: dict) -> str:
    """The DAE sweep's answer in plain words: at which (stage-1 decoder, stage-2 length) the DAE's samples
    beat the joint baseline's with the same total epochs, and by how much."""
    wins, compared = [], 0
    for key in ("fid_gmm", "fid_ldm"):
        row = summary["table"].get(key)
        for s2 in DAE_STAGE2:
            j = (row or {}).get(f"joint-s{s2}") or {}
            for i, (label, _) in enumerate(DAE_LEVELS):
                d = (row or {}).get(f"dae-l{i}-s{s2}") or {}
                if d.get("mean") is None or j.get("mean") is None:
                    continue
                compared += 1
                if d["mean"] < j["mean"]:
                    n = min(len(d["values"]), len(j["values"]))
                    sure = ("one seed" if n < 2 else "beyond 2 sd of the seeds"
                            if j["mean"] - d["mean"] > 2 * max(d["sd"], j["sd"]) else "not settled: within 2 sd")
                    wins.append(f"{row['label']}, stage-1 decoder {label}, stage 2 {s2} epochs: {d['mean']:.1f} "
                                f"against {j['mean']:.1f} ({(1 - d['mean'] / j['mean']) * 100:.0f}% lower; {sure})")
    if not compared:
        return ("No point of the sweep has finished yet." if not summary.get("runs_done") else
                "No DAE point can be compared yet: none has both its own sample FID and its joint baseline's "
                "(the baseline with the same total epochs must finish too, scored with the dataset's classifier).")
    if not wins:
        return (f"**In none of the {compared} finished comparisons (FID of mixture and latent-diffusion samples) does "
                "the DAE give better samples than the joint baseline with the same total epochs.**")
    return (f"**The DAE gives better samples than the joint baseline with the same total epochs in {len(wins)} of "
            f"{compared} finished comparisons:**\n" + "".join(f"\n- {w}" for w in wins))


def sweep_table_markdown(summary: dict) -> str:
    """The sweep as one row per (stage-2 length, metric): the DAE at each stage-1 decoder, then the joint baseline."""
    head = ("| stage-2 epochs | metric (mean ± sd over seeds) | " + " | ".join(f"DAE, stage-1 decoder: {label}"
                                                                    for label, _ in DAE_LEVELS)
            + " | joint, same total epochs |\n" + "|---" * (len(DAE_LEVELS) + 3) + "|\n")
    body = ""
    for s2 in DAE_STAGE2:
        for key, row in summary["table"].items():
            cells = [row.get(f"dae-l{i}-s{s2}") for i in range(len(DAE_LEVELS))] + [row.get(f"joint-s{s2}")]
            body += (f"| {s2} | {row['label']} | "
                     + " | ".join(_cell(c) if c else "–" for c in cells) + " |\n")
    foot = (f"\n{summary['runs_done']} of {summary['runs_total']} runs finished, on {summary['hardware']}. "
            f"{summary['why']}")
    return head + body + foot + _fid_note(summary) + "\n"


def summary_markdown(summary: dict) -> str:
    """What a panel shows beside the chart: progress, the plain answer, the table (the ablation's) and verdicts."""
    head = (f"**{summary['runs_done']} of {summary['runs_total']} runs finished**"
            + (f" (the rest continue with `python -m explorer.studies run {summary['study']} --hours 2`)"
               if summary["runs_done"] < summary["runs_total"] else "") + ".\n\n"
            + (f"{summary['note'].strip()}\n\n" if summary.get("note") else ""))  # what the shipper read in it
    if summary["study"] == "dae-sweep":
        return head + where_decoupling_helps(summary) + "\n\n" + sweep_table_markdown(summary)
    return head + table_markdown(summary)


if __name__ == "__main__":
    main()
