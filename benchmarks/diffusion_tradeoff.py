"""Classifier-FID against sampling steps for DDIM eta=0 and eta=1 (eta=1 over all T steps is DDPM),
for each diffusion checkpoint; writes each model's tradeoff.json, which the Diffusion panel charts.

    python benchmarks/diffusion_tradeoff.py [--checkpoints DIR] [--models NAME ...]
        [--steps 10 20 50 100 250 1000] [--n 2000] [--device cuda] [--file targets.json]

Every point uses the same N, seed, class-balanced labels and guidance 1 (the plain conditional
model) as evaluation.evaluate_diffusion, and the real-vs-real floor at that N is stored beside them.
Each point also records ``off_class``: the share of samples whose requested class the in-project
classifier gives p < 0.5 (the eta = 0 "clutter" of benchmarks/x0_clipping.py counts the same way).
DDPM over fewer than T steps is the respaced chain, which equals DDIM with eta=1 step for step (a
test checks this), so the eta=1 curve is the DDPM curve and its 1000-step point is DDPM proper.
Cost grows with N x total steps: the full grid (N=2000, both etas, 1430 steps each) is about
5.7 M UNet image-steps per model, hours on a 2-core CPU and minutes on a GPU. On the CPU the shipped
charts use N=500 with every point (``--n 500 --threads 1``: 83-91 min per pixel model on one bfloat16
thread, 3.4-3.8 ms per image-step; ``--skip 0:1000`` saves a third of it). ``--file`` writes
another name beside the checkpoint instead, so that a few points at a larger N (the issue's N = 2,000
targets: ``--n 2000 --steps 50 1000 --etas 0 1 --skip 0:1000 --file targets.json``) do not replace the charted grid.
``--merge`` keeps the points of the file already there that this run does not measure again, when they were
measured on the same weights, N and seed and either with the same ``--spacing`` or over all T steps (where
every spacing visits every t, so the chain is the same): a grid re-measured under another spacing keeps its
costly 1000-step points.

A long point can be spread over several sessions: ``--partial DIR`` saves every finished batch (the samples
so far, the random generator's state and the seconds spent) in DIR, and ``--max-batches K`` stops after K
batches; the same command run again goes on from there, so the result equals one uninterrupted run. Saved
batches are used only with the same weights (their SHA-256), N, batch and seed, and are removed once the
JSON is written.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from explorer.diffusion import SPACINGS  # noqa: E402  (_common puts the repository on the path)


def main(argv=None):
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", help="diffusion checkpoints (default: all in the folder)")
    p.add_argument("--steps", nargs="*", type=int, default=[10, 20, 50, 100, 250, 1000])
    p.add_argument("--etas", nargs="*", type=float, default=[0.0, 1.0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip", nargs="*", default=[], metavar="ETA:STEPS",
                   help="grid points to leave out, e.g. 0:1000 (DDIM eta=0 over all T steps)")
    p.add_argument("--file", default="tradeoff.json",
                   help="JSON file written beside each checkpoint (default tradeoff.json, which the panel charts)")
    p.add_argument("--spacing", default=None, choices=SPACINGS,
                   help="timesteps of a chain shorter than T (diffusion.timesteps); default: each model's own, "
                        "config.sampling_spacing (trailing for pixel models, leading for latent ones)")
    p.add_argument("--merge", action="store_true",
                   help="keep the file's other points (same weights, N and seed; same spacing, or all T steps)")
    p.add_argument("--partial", default=None, metavar="DIR",
                   help="keep each finished batch in DIR, so that a stopped run goes on where it stopped")
    p.add_argument("--max-batches", type=int, default=None, metavar="K",
                   help="stop after sampling K batches (needs --partial); run the same command again to go on")
    a = p.parse_args(argv)
    if os.path.basename(a.file) != a.file or not a.file.endswith(".json"):
        p.error(f"--file takes a bare .json file name, not {a.file!r}")
    if a.max_batches is not None and (a.partial is None or a.max_batches < 1):
        p.error("--max-batches takes a positive count and needs --partial DIR to keep the batches in")
    import torch

    from explorer import cards, data, evaluation, export, metrics
    from explorer.checkpoints import Zoo

    if a.threads:
        torch.set_num_threads(a.threads)
    zoo = Zoo(a.checkpoints)
    names = a.models or zoo.available("ddpm")
    if not names:
        sys.exit(f"no diffusion checkpoints in {zoo.root}")
    print("\n".join(C.machine_lines()))
    budget = _Budget(a.max_batches)
    for name in names:
        model = zoo.load(name, device=a.device)
        info = zoo.info(name)
        dataset = info["dataset"]
        device = next(model.parameters()).device
        clf = evaluation.classifier(dataset, a.checkpoints, device)
        test, train = data.load(dataset, "test").floats(), data.load(dataset, "train").floats()
        n = min(a.n, len(test), len(train))
        ref = metrics.feature_stats(clf, test[:n])
        floor = metrics.frechet_distance(*metrics.feature_stats(clf, evaluation.floor_images(train, n)), *ref)
        labels = torch.arange(n) % model.config.classes
        rows, saved = [], []
        weights = export.weights_sha256(zoo, name)
        precision = str(model.sampling_dtype(device)).replace("torch.", "")
        spacing = a.spacing or model.config.sampling_spacing
        skip = {(float(e), int(k)) for e, k in (item.split(":") for item in a.skip)}
        for eta in a.etas:
            for steps in a.steps:
                if steps > model.config.timesteps or (eta, steps) in skip:
                    continue
                key = {"weights": weights, "precision": precision, "device": device.type, "eta": eta, "steps": steps,
                       "spacing": spacing, "n": n, "batch": a.batch, "seed": 1234}
                spaced = "-trailing" if spacing == "trailing" else ""  # leading keeps the names saved before
                where = (Path(a.partial) / name.replace("/", "--") /
                         f"eta{eta:g}-steps{steps}{spaced}-n{n}-batch{a.batch}.pt" if a.partial else None)
                sampled = _sample_point(model, labels, a.batch, key, where, budget)
                if sampled is None:
                    print(f"stopped after {a.max_batches} batch(es); the batches so far are in {a.partial}: "
                          "run the same command again to go on", flush=True)
                    return
                x, seconds = sampled
                saved.append(where)
                fid = metrics.frechet_distance(*metrics.feature_stats(clf, x), *ref)
                off = float(metrics.off_class(clf, x, labels).float().mean())  # p < 0.5: a neighbour or clutter
                rows.append({"sampler": "ddim", "eta": eta, "steps": steps, "spacing": spacing, "fid": round(fid, 3),
                             "off_class": round(off, 4), "ms_per_image": round(1000 * seconds / n, 3)})
                print(f"{name}  eta={eta:g}  steps={steps:5d}  FID {fid:8.2f}  (floor {floor:.2f}, N={n})  "
                      f"off-class {100 * off:.1f}%  {1000 * seconds / n:.1f} ms/image", flush=True)
        result = {"model": name, "fid_n": n, "fid_floor": round(floor, 3), "guidance": 1.0,
                  "labels": "class-balanced", "seed": 1234, "spacing": spacing, "weights_sha256": weights,
                  "epochs": cards.total_training(info.get("training") or {})[0],
                  "device": evaluation.hardware(str(device)),
                  "precision": precision,
                  "note": "eta=1 is the (respaced) DDPM ancestral sampler; eta=1 at T steps is DDPM", "rows": rows}
        path = zoo.path(name) / a.file
        if a.merge and path.exists():
            result["rows"] = _merged(json.loads(path.read_text()), result, model.config.timesteps)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
        for where in saved:
            if where is not None and where.exists():
                where.unlink()


def _merged(old: dict, new: dict, T: int) -> list[dict]:
    """``new``'s rows and those of ``old`` it does not re-measure and may keep (see ``--merge``), by (eta, steps)."""
    same = all(old.get(k) == new[k] for k in ("weights_sha256", "fid_n", "seed"))
    if not same:
        print(f"not merging {new['model']}'s earlier points: other weights, N or seed", flush=True)
        return new["rows"]
    measured = {(r["eta"], r["steps"]) for r in new["rows"]}
    earlier = old.get("spacing", "leading")  # files written before --spacing existed: leading
    kept = [{**r, "spacing": r.get("spacing", earlier)} for r in old["rows"] if (r["eta"], r["steps"]) not in measured
            and (r.get("spacing", earlier) == new["spacing"] or r["steps"] == T)]
    return sorted(new["rows"] + kept, key=lambda r: (r["eta"], r["steps"]))


class _Budget:
    """How many more batches this run may sample (None: no limit)."""

    def __init__(self, batches):
        self.left = batches

    def take(self) -> bool:
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def _sample_point(model, labels, batch, key, where, budget):
    """All N samples of one grid point and the seconds they took, batch by batch from one generator
    (seed 1234), going on from the batches saved in ``where``; None when ``budget`` ran out first."""
    import torch

    g = torch.Generator().manual_seed(key["seed"])
    done, seconds = [], 0.0
    if where is not None and where.exists():
        state = torch.load(where, weights_only=True)  # tensors and plain values only: no pickled code runs
        kept = {"spacing": "leading", **state["key"]}  # batches saved before --spacing existed: leading
        if kept == key:
            done, seconds = list(state["samples"].split(batch)), float(state["seconds"])
            g.set_state(state["generator"])
            print(f"going on from {len(done)} saved batch(es) in {where}", flush=True)
        else:
            print(f"ignoring {where}: saved for other weights or settings", flush=True)
    for y in list(labels.split(batch))[len(done):]:
        if not budget.take():
            return None
        t0 = time.perf_counter()
        done.append(model.sample(len(y), steps=key["steps"], sampler="ddim", eta=key["eta"], guidance=1.0,
                                 labels=y, generator=g, spacing=key["spacing"]).cpu())
        seconds += time.perf_counter() - t0
        if where is not None:
            where.parent.mkdir(parents=True, exist_ok=True)
            tmp = where.with_suffix(".tmp")
            torch.save({"key": key, "samples": torch.cat(done), "generator": g.get_state(), "seconds": seconds}, tmp)
            os.replace(tmp, where)  # a run killed mid-write leaves the previous batches intact
    return torch.cat(done), seconds


if __name__ == "__main__":
    main()
