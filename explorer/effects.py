"""What an attribute vector does, measured against ground truth: the smile vector and its side effects.

For a dataset with labelled factors (the faces) and a model with an encoder: each yes/no attribute vector the
dataset offers, v = mean code(A) - mean code(not A) over the test set, is applied to up to 500 test images that
are not A. The dataset's factor classifier then judges each moved decode g(z + s v) against the same image's
unmoved reconstruction g(z) (never against the sharp original: a judge trained on sharp images misreads blurred
decodes, so both sides of the comparison go through the decoder):

- ``hit``: the share of moved decodes the classifier calls A, with ``hit_before``, the share of unmoved
  reconstructions it already called A (the attribute's own false-positive floor);
- ``kept[f]`` for every factor f: the share of images whose predicted value of f is the same after the move as
  before it: 1.0 means the vector leaves f alone, lower values are side effects.

    python -m explorer.effects faces/vae-64            # writes effects.json beside the checkpoint, prints the table
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np
import torch

from . import datasets

N_IMAGES = 500
STRENGTHS = (1.0, 2.0, 3.0)
SUGGESTED = 2.0  # the table's strength: the end of the Attribute vectors strip's default range (±2)
FILE = "effects.json"


@dataclass
class Effect:
    vector: str           # the preset's name, e.g. "smile"
    group_a: str          # "smiling"
    group_b: str          # "not smiling"
    n: int                # images moved
    hit_before: float     # share judged A before the move (their reconstructions)
    hit: dict             # strength -> share judged A after the move
    kept: dict            # strength -> {factor: share of images whose predicted value is unchanged}


def binary_presets(spec: datasets.DatasetSpec) -> dict:
    """The dataset's presets that are a yes/no attribute against its negation (what the table measures)."""
    return {k: (a, b) for k, (a, b) in spec.attribute_presets.items()
            if a in spec.binary and b == f"not {a}"}


MIN_JUDGE_ACCURACY = 0.8  # factors the classifier reads worse than this on sharp test images are not judged


def measure(encode, decode, judge, images: torch.Tensor, factors: np.ndarray, spec: datasets.DatasetSpec,
            strengths=STRENGTHS, n_images: int = N_IMAGES, seed: int = 0, batch: int = 250,
            judged: list | None = None) -> list[Effect]:
    """Each yes/no vector of ``spec`` applied to up to ``n_images`` test images outside its group A.

    ``encode(x (N, C, H, W)) -> codes (N, D)``, ``decode(codes) -> images``, ``judge(images) -> [probabilities
    (N, values) per factor, in the order of spec.factors]``; ``images`` float (N, C, H, W) with ``factors``
    int (N, F) their ground truth (for choosing groups and images). ``judged``: the factors reported in ``kept``
    (default: all)."""
    names = list(spec.factors)
    judged = names if judged is None else [f for f in names if f in judged]
    codes = torch.cat([encode(images[i:i + batch]).cpu() for i in range(0, len(images), batch)]).double().numpy()
    rng = np.random.default_rng(seed)

    def predicted(z: np.ndarray) -> np.ndarray:  # (N, F): the judge's value of every factor, decoded from z
        out = []
        for i in range(0, len(z), batch):
            x = decode(torch.as_tensor(z[i:i + batch], dtype=torch.float32))
            out.append(np.stack([p.argmax(-1).cpu().numpy() for p in judge(x)], 1))
        return np.concatenate(out)

    effects = []
    for vec, (a, b) in binary_presets(spec).items():
        factor, yes = spec.binary[a]
        j = names.index(factor)
        yes_codes = [spec.factors[factor].index(v) for v in yes]
        is_a = np.isin(factors[:, j], yes_codes)
        if not is_a.any() or is_a.all():
            continue
        v = codes[is_a].mean(0) - codes[~is_a].mean(0)
        pick = np.flatnonzero(~is_a)
        pick = np.sort(rng.choice(pick, min(n_images, len(pick)), replace=False))
        z = codes[pick]
        before = predicted(z)
        hit, kept = {}, {}
        for s in strengths:
            after = predicted(z + s * v)
            hit[s] = float(np.isin(after[:, j], yes_codes).mean())
            kept[s] = {f: float((after[:, k] == before[:, k]).mean()) for k, f in enumerate(names) if f in judged}
        effects.append(Effect(vec, a, b, len(pick), float(np.isin(before[:, j], yes_codes).mean()), hit, kept))
    return effects


def for_checkpoint(zoo, name: str, store=None, strengths=STRENGTHS) -> list[Effect]:
    """:func:`measure` for checkpoint ``name`` on its dataset's test set, judged by its dataset's classifier."""
    from . import data

    h = zoo.handle(name)
    spec = datasets.get(h.dataset)
    if not spec.factors or not h.caps.has_encoder:
        raise ValueError(f"{name}: effects need a model with an encoder on a dataset with labelled factors")
    model = store.model(name) if store else zoo.load(name, device="cpu")
    clf_name = f"{h.dataset}/classifier"
    clf = store.classifier(h.dataset) if store else (zoo.load(clf_name, device="cpu")
                                                     if clf_name in zoo.available() else None)
    if clf is None or not getattr(clf, "factor_heads", None):
        raise ValueError(f"{name}: no factor classifier {clf_name!r} to judge with; "
                         f"build it with `python -m explorer.training classifier --dataset {h.dataset}`")
    test = store.dataset(h.dataset) if store else data.load_assets(h.dataset)
    return measure(model.encode, model.decode, clf.predict_factors, test.floats(), test.factors.numpy(), spec,
                   strengths, judged=judged_factors(zoo, h.dataset))


def judged_factors(zoo, dataset: str) -> list[str] | None:
    """The factors the dataset's classifier reads reliably (test accuracy >= MIN_JUDGE_ACCURACY in its card's
    metrics): the faces' clothing is cropped out of the frame, so the classifier cannot see it and is at chance."""
    try:
        acc = zoo.info(f"{dataset}/classifier")["metrics"].get("factor_accuracy") or {}
    except Exception:  # noqa: BLE001 - no card: judge every factor
        return None
    return [f for f, a in acc.items() if a >= MIN_JUDGE_ACCURACY] or None


def to_json(effects: list[Effect]) -> list[dict]:
    return [{**e.__dict__, "hit": {str(k): v for k, v in e.hit.items()},
             "kept": {str(k): v for k, v in e.kept.items()}} for e in effects]


def from_json(rows: list[dict]) -> list[Effect]:
    return [Effect(r["vector"], r["group_a"], r["group_b"], r["n"], r["hit_before"],
                   {float(k): v for k, v in r["hit"].items()}, {float(k): v for k, v in r["kept"].items()})
            for r in rows]


def table(effects: list[Effect], spec: datasets.DatasetSpec, s: float = SUGGESTED) -> str:
    """A Markdown table: one row per vector; its hit rate before and after at strength ``s`` and, for every
    factor, the share left unchanged (in italics the vector's own factor: there the change is the point)."""
    if not effects:
        return ""
    factors = list(effects[0].kept[s])
    head = ["vector (A − not A)", "images", "called A before", f"after, s = {s:g}"] + factors
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in effects:
        own = spec.binary[e.group_a][0]
        cells = [f"**{e.vector}**", f"{e.n}", f"{e.hit_before:.0%}", f"**{e.hit[s]:.0%}**"]
        cells += [f"*{e.kept[s][f]:.0%}*" if f == own else f"{e.kept[s][f]:.0%}" for f in factors]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(spec: datasets.DatasetSpec, effects: list[Effect], s: float = SUGGESTED) -> str:
    """The table with a sentence on how to read it."""
    return (f"Each yes/no vector applied at strength s = {s:g} to up to {N_IMAGES} test images without the "
            "attribute; the factor classifier compares every moved decode with the same image's unmoved "
            "reconstruction. *after*: the share it calls A; each factor column: the share whose predicted value did "
            "not change (in italics the vector's own factor, which is meant to change)." +
            _unjudged(spec, effects) + "\n\n" + table(effects, spec, s))


def _unjudged(spec, effects) -> str:
    left = [f for f in spec.factors if effects and f not in effects[0].kept[next(iter(effects[0].kept))]]
    return (f" Not judged: {', '.join(left)} (the classifier cannot read them reliably: below "
            f"{MIN_JUDGE_ACCURACY:.0%} test accuracy).") if left else ""


def main(argv=None) -> None:
    from .checkpoints import Zoo

    p = argparse.ArgumentParser(prog="python -m explorer.effects", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="a checkpoint with an encoder on a dataset with factors, e.g. faces/vae-64")
    p.add_argument("--checkpoints", help="checkpoint root (default: the shipped checkpoints/)")
    a = p.parse_args(argv)
    zoo = Zoo(a.checkpoints)
    torch.manual_seed(0)
    effects = for_checkpoint(zoo, a.name)
    (zoo.path(a.name) / FILE).write_text(json.dumps(to_json(effects), indent=2) + "\n")
    text = write_card_section(zoo, a.name, effects)
    print(text)


def write_card_section(zoo, name: str, effects: list[Effect]) -> str:
    """Put the table (and the hit rates at every strength) into the checkpoint's card; returns the section."""
    from . import cards

    spec = datasets.get(zoo.handle(name).dataset)
    rates = "\n".join(f"- {e.vector}: called {e.group_a} {e.hit_before:.0%} before, then "
                      + ", ".join(f"{v:.0%} at s = {k:g}" for k, v in e.hit.items()) for e in effects)
    section = (f"## Attribute vectors, measured\n`python -m explorer.effects {name}` (effects.json).\n\n"
               + summary(spec, effects) + "\n\nThe share called A at each strength:\n\n" + rates + "\n")
    cards.update_section(zoo.path(name), "## Attribute vectors, measured", section)
    return section


if __name__ == "__main__":
    main()
