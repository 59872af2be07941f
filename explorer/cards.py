"""Model cards (README.md) and metrics.json of a checkpoint: what they say, and one way to write them.

Three tools write into a checkpoint's folder: training (the whole card and metrics.json), the Model zoo's
scoring (zoo_table.py: a "zoo" block and a "## Zoo comparison" section) and the studies (studies.py: e.g. a
"## DAE vs joint baseline" section). They all write through here, so every file is replaced atomically (the
app may be reading it) and a section is replaced in place, never appended twice.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import checkpoints

OWN_SECTIONS = ("## Data", "## Training", "## Test metrics")  # what model_card writes; the rest is kept


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader sees the old file or the new."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_metrics(directory: str | os.PathLike, metrics: dict) -> None:
    write_atomic(Path(directory) / checkpoints.METRICS, json.dumps(metrics, indent=2) + "\n")


def write_card(directory: str | os.PathLike, card: str) -> None:
    write_atomic(Path(directory) / checkpoints.CARD, card)


def rewrite_card(directory: str | os.PathLike, card: str) -> None:
    """Replace the sections :func:`model_card` writes, keeping the ones other tools added (in order)."""
    path = Path(directory) / checkpoints.CARD
    kept = extra_sections(path.read_text()) if path.is_file() else ""
    write_card(directory, card.rstrip("\n") + "\n" + (f"\n{kept}" if kept else ""))


def with_section(card: str, heading: str, section: str) -> str:
    """``card`` with its section under ``heading`` (a "## " line, up to the next "## ") replaced by ``section``,
    which starts with that heading; appended when the card has none. A heading line may go on after the heading
    and a space ("## DAE vs joint baseline (3 seeds; ...)")."""
    heading = heading.strip()
    lines = card.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == heading or line.startswith(heading + " ")),
                 None)
    if start is None:
        return card.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    rest = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + rest if rest else "")


def update_section(directory: str | os.PathLike, heading: str, section: str, new_card: str = "") -> str:
    """Put ``section`` under ``heading`` in the checkpoint's card (replaced or appended), atomically; returns
    the new card. ``new_card``: what the card starts as when the checkpoint has none."""
    path = Path(directory) / checkpoints.CARD
    card = with_section(path.read_text() if path.is_file() else new_card, heading, section)
    write_card(directory, card)
    return card


def extra_sections(card: str) -> str:
    """The "## " sections of a card that :func:`model_card` does not write, in order."""
    own = set(OWN_SECTIONS)
    kept, keep = [], False
    for line in card.splitlines(keepends=True):
        if line.startswith("## "):
            keep = line.strip() not in own
        if keep:
            kept.append(line)
    return "".join(kept)



def total_training(training: dict) -> tuple[int, float]:
    """(epochs, wall-time seconds) of a checkpoint's whole training: its own run plus, after a warm start
    (``continued_from``), the training it continued from."""
    before = training.get("continued_from") or {}
    return ((training.get("epochs") or 0) + (before.get("epochs") or 0),
            (training.get("wall_time_s") or 0) + (before.get("wall_time_s") or 0))


def model_card(name: str, family: str, config: dict, meta: dict, results: dict) -> str:
    t = meta["training"]
    flat = {}
    for k, v in results.items():  # a dict of results (a factor classifier's per-factor accuracy) gets a row each
        flat.update({f"{k}: {kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                     for k, v in flat.items())
    notes = {
        "fid": f"classifier-FID of {results.get('fid_n')} samples ({results.get('fid_sampler')}, class-balanced "
               "labels) against the test set, on this dataset's in-project classifier's penultimate features; "
               "`fid_floor` is real-vs-real (train vs test) at the same N" if "fid_sampler" in results else
               "classifier-FID of 5,000 prior samples against the test set, on this dataset's in-project "
               "classifier's penultimate features; `fid_floor` is real-vs-real (train vs test) at the same N",
        "linear_probe": f"accuracy of a logistic regression on standardised codes, fitted on "
                        f"{results.get('probe_train')} train-split codes, tested on {results.get('probe_test')} "
                        "test-split codes",
        "iw_nll": f"importance-weighted NLL (Burda et al.) with {results.get('iw_samples')} samples on the "
                  f"first {results.get('iw_images')} test images, nats per image, Bernoulli decoder",
    }
    notes["test_eps_mse"] = (f"the training loss (eps-prediction MSE per element) on the first "
                             f"{results.get('eps_mse_images')} test images at seeded random t")
    notes["sample_ms_per_image"] = f"sampling time for the FID samples on {results.get('sample_hardware')}"
    notes["prior_loglik_per_dim"] = ("held-out log-likelihood per latent dimension of the test codes under the "
                                     "Gaussian mixture fitted to the standardised training codes (nats; N(0, I) "
                                     "scores -1.419, higher = a simpler latent distribution)")
    notes["factor_accuracy"] = ("test accuracy of each factor head (one softmax head per labelled factor on the "
                                "shared features), against the factors the faces were drawn from")
    notes["stage1_test_mse"] = "test reconstruction MSE of the weak stage-1 decoder on the same codes"
    notes["recon_sharpness"] = ("fine detail of the reconstructions of the first 2,000 test images relative to the "
                                "images themselves: the mean squared 3x3 Laplacian response, ratio (1 = as sharp, "
                                "below 1 = blurrier)")
    notes["sample_sharpness"] = "the same ratio for the FID samples against the FID's test images"
    explained = "\n".join(f"- `{k}`: {v}" for k, v in notes.items() if k in results)
    ema = f" Weights: exponential moving average, decay {t['ema_decay']}." if t.get("ema_decay") else ""
    if t.get("precision"):
        ema += f" Forward passes in {t['precision']} (float32 weights)."
    before = t.get("continued_from")
    if before:
        ema += (f"\n\nContinued from a checkpoint trained for {before['epochs']} epochs ({before['wall_time_s']:.0f} s on "
                f"{before['hardware']}, Adam lr {before['lr']}) by\n\n    {before['command']}\n\n"
                f"The warm start begins the model and its moving average at those weights. In total: "
                "{} epochs, {:.0f} s of training.".format(*total_training(t)))
    return f"""# {name}

Family `{family}`, config `{json.dumps(config)}`, {t['parameters']:,} parameters.

## Data
`{meta['dataset']}` train split ({t['train_images']:,} images); metrics on its test split.

## Training
    {meta['command']}

{t['epochs']} epochs, batch {t['batch_size']}, Adam lr {t['lr']} with cosine decay, seed {t['seed']},
{t['processes']} process(es). Wall time {t['wall_time_s']:.0f} s on {t['hardware']} (torch {t['torch']}).{ema}

## Test metrics
| metric | value |
|---|---|
{rows}

{explained}
"""
