"""The model zoo's comparison table: one row per generative checkpoint of a dataset, every FID at one N.

    python -m explorer.zoo_table --dataset fashion-mnist            # fill the "zoo" blocks, print the table
    python -m explorer.zoo_table --dataset digits --root my_ckpts --n 500

Checkpoints are scored at different N when they are trained (5,000 samples for the autoencoder family,
2,000 for diffusion, whose DDIM-50 samples cost ~0.27 s each on a CPU), and classifier-FID depends on N,
so those numbers cannot share a column. :func:`refresh` gives every checkpoint a ``"zoo"`` block in its
metrics.json, ``{"fid", "fid_floor", "fid_n", "sample_ms_per_image", "sample_hardware", ...}``, computed
with evaluation.evaluate_checkpoint's recipe at one common N (a training FID already at that N is reused,
not recomputed), and writes a "## Zoo comparison" section into each model card. :func:`table` then reads
only config.json and metrics.json (no model is loaded) and returns one dict per checkpoint.

Recipe (as in ``evaluation.evaluate_checkpoint`` / ``evaluate_diffusion``): samples from
``torch.Generator().manual_seed(1234)`` (autoencoder family: ``model.sample`` in batches of 500;
diffusion: class-balanced labels ``arange(N) % 10``, DDIM-50, eta = 0, guidance 1, batches of 250),
against the first N test images, on the dataset's in-project classifier; the floor is real-vs-real,
train subset ``randperm(len(train), generator=manual_seed(4321))[:N]`` vs the same N test images.
"""
from __future__ import annotations

import argparse
import sys

from . import cards, checkpoints
from .checkpoints import CheckpointError, Zoo, short_name

ZOO_N = 2000                          # the common N of every zoo FID (diffusion's training N)
BLOCK = "zoo"                         # the key of the block in metrics.json
SECTION = "## Zoo comparison"         # the heading of the section in the model card
FAMILY_ORDER = ("ae", "vae", "gmm-vae", "dae", "gan", "ddpm")
BLOCK_KEYS = ("fid", "fid_floor", "fid_n", "sample_ms_per_image", "sample_hardware")


def refresh_command(dataset: str, n: int = ZOO_N) -> str:
    """The command that fills the "zoo" blocks of ``dataset``'s checkpoints."""
    return f"python -m explorer.zoo_table --dataset {dataset}" + ("" if n == ZOO_N else f" --n {n}")


# ----------------------------------------------------------------------------- which models, what they are

def _info(zoo: Zoo, name: str) -> dict | None:
    try:
        return zoo.info(name)
    except (CheckpointError, ValueError, OSError):
        return None


def _sort_key(name: str, info: dict | None) -> tuple:
    if info is None:
        return (len(FAMILY_ORDER), 0, name)
    family, cfg = info.get("family"), info.get("config", {})
    rank = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
    sub = 1 if cfg.get("space") == "latent" else 0
    return (rank, sub, name)


def generative_models(zoo: Zoo, dataset: str) -> list[str]:
    """The non-classifier checkpoints of ``dataset``, in the zoo's display order: the autoencoder family,
    DAE and its joint baseline, the GAN, pixel diffusion, latent diffusion. A checkpoint whose config.json
    cannot be read is listed last (its row says how to rebuild it)."""
    names = []
    for name in zoo.available():
        ds, _, _ = name.partition("/")
        if ds != dataset:
            continue
        info = _info(zoo, name)
        if info is not None and info.get("family") == "classifier":
            continue
        names.append((_sort_key(name, info), name))
    return [n for _, n in sorted(names)]


def datasets(zoo: Zoo) -> list[str]:
    """Datasets that have at least one generative checkpoint, sorted."""
    return sorted({n.partition("/")[0] for n in zoo.available()
                   if (_info(zoo, n) or {}).get("family") != "classifier"})


def _encoder_label(family: str, cfg: dict) -> str:
    """What an autoencoder-family model is called in the table (also used for the one inside an LDM)."""
    if family == "dae":
        return "DAE" if cfg.get("mode", "decoupled") == "decoupled" else "Joint AE (baseline)"
    return {"ae": "AE", "vae": "VAE", "gmm-vae": "GMM-VAE"}.get(family, family.upper())


def describe(info: dict) -> tuple[str, str]:
    """(human label, what its latent is) of a checkpoint from its config.json alone."""
    family, cfg = info.get("family", "?"), info.get("config", {})
    d = cfg.get("latent_dim")
    if family in ("ae", "vae", "gmm-vae"):
        label = f"{_encoder_label(family, cfg)} ({d}-D)"
        if family == "gmm-vae":
            label = f"GMM-VAE ({d}-D, {cfg.get('components', '?')} components)"
            if cfg.get("adv_weight", 0) > 0:  # mixture + regulariser + PatchGAN: the whole GAMIX-VAE
                label = f"GAMIX-VAE ({d}-D, {cfg.get('components', '?')} components + PatchGAN)"
        if family == "vae" and cfg.get("adv_weight", 0) > 0:
            label = f"VAE + PatchGAN ({d}-D)"
        latent = {"ae": f"{d}-D code (sampled via a fitted Gaussian)",
                  "vae": f"{d}-D; prior N(0, I)",
                  "gmm-vae": f"{d}-D; learned mixture prior"}[family]
        return label, latent
    if family == "dae":
        label = f"{_encoder_label(family, cfg)} + mixture ({d}-D)"
        return label, f"{d}-D code (sampled via a fitted {cfg.get('prior_components', '?')}-component mixture)"
    if family == "gan":
        return f"GAN (DCGAN, {d}-D)", f"{d}-D prior code; no encoder"
    if family == "ddpm":
        if cfg.get("space", "pixel") == "pixel":
            shape = "×".join(str(v) for v in cfg.get("image_shape", (1, 28, 28)))
            return f"DDPM pixel, {cfg.get('schedule', '?')}", f"starting noise x_T, {shape}"
        vae_family, vae_cfg = cfg.get("vae_family", "vae"), cfg.get("vae_config", {})
        source = short_name(cfg.get("vae", "")) or vae_family
        if vae_family == "dae":
            label = f"{_encoder_label(vae_family, vae_cfg)} + latent diffusion"
        else:
            label = f"Latent diffusion on {source}"
        return label, f"starting noise x_T over {source}'s {cfg.get('latent_dim', '?')}-D codes"
    return family, "?"


# ----------------------------------------------------------------------------- the table

def table(zoo: Zoo, dataset: str) -> list[dict]:
    """One dict per generative checkpoint of ``dataset``, read from config.json and metrics.json only.

    Keys: name, label, family, latent, fid, fid_n, fid_floor (from the metrics' "zoo" block; None when
    missing, and then ``fid_note`` names the command that fills it, and card_fid / card_fid_n give the
    training FID at its own N for reference), sample_sharpness (from the zoo block: the FID samples' fine
    detail over the test images'), test_mse (reconstruction MSE per pixel, None where the model has no
    encoder), parameters (param_note says what they include beyond the sampler, e.g. a discriminator), sample_ms_per_image and sample_hardware
    (from the zoo block, else from the training evaluation), wall_time_s (training), wall_time_note
    (latent diffusion: the autoencoder's own training is separate), hardware (where it was trained),
    epochs, command, error (why the checkpoint's files cannot be read, with the rebuild command)."""
    rows = []
    for name in generative_models(zoo, dataset):
        row = dict(name=name, label=short_name(name), family=None, latent=None, fid=None, fid_n=None,
                   fid_floor=None, fid_note=None, card_fid=None, card_fid_n=None, test_mse=None, parameters=None,
                   sample_sharpness=None, sample_ms_per_image=None,
                   sample_hardware=None, wall_time_s=None, wall_time_note=None, hardware=None, epochs=None,
                   command=checkpoints.rebuild_command(name), error=None)
        try:
            info = zoo.info(name)
        except (CheckpointError, ValueError, OSError) as err:
            row["error"] = str(err)
            rows.append(row)
            continue
        metrics, training, cfg = info.get("metrics", {}), info.get("training", {}), info.get("config", {})
        label, latent = describe(info)
        block = metrics.get(BLOCK) or {}
        row.update(label=label, family=info["family"], latent=latent, command=info.get("command") or row["command"],
                   test_mse=metrics.get("test_mse"), parameters=training.get("parameters"),
                   wall_time_s=training.get("wall_time_s"), hardware=training.get("hardware"),
                   epochs=training.get("epochs"))
        if training.get("continued_from"):  # a warm start: the column shows the whole training
            row["epochs"], row["wall_time_s"] = cards.total_training(training)
        if "fid" in block:
            row.update(fid=block["fid"], fid_n=block.get("fid_n"), fid_floor=block.get("fid_floor"),
                       sample_sharpness=block.get("sample_sharpness"))
        else:
            row["fid_note"] = f"not measured at the common N yet: `{refresh_command(dataset)}`"
            if "fid" in metrics:  # the training FID, at its own N: shown for reference, not compared
                row.update(card_fid=metrics["fid"], card_fid_n=metrics.get("fid_n"))
        timing = block if "sample_ms_per_image" in block else metrics
        row.update(sample_ms_per_image=timing.get("sample_ms_per_image"),
                   sample_hardware=timing.get("sample_hardware"))
        if info["family"] in ("vae", "gmm-vae") and cfg.get("adv_weight", 0) > 0:
            row["param_note"] = "its parameters include the PatchGAN discriminator, used only in training"
        if info["family"] == "ddpm" and cfg.get("space") == "latent":
            source = cfg.get("vae") or "its autoencoder"
            note = f"+ the training of {short_name(source)}, which is separate"
            src = _info(zoo, source) if "/" in source else None
            seconds = (src or {}).get("training", {}).get("wall_time_s")
            if seconds is not None:
                note = f"+ {short_name(source)}'s own training ({_duration(seconds)}), which is separate"
            row["wall_time_note"] = note
        rows.append(row)
    return rows


def _duration(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _machine(hardware: str) -> str:
    """"AMD EPYC (2 cores), 1 torch thread(s)" -> "AMD EPYC (2 cores)" (evaluation.hardware's format)."""
    head, _, tail = hardware.rpartition(", ")
    return head if head and "thread" in tail else hardware


def _threads(hardware: str | None) -> str:
    """"AMD EPYC (2 cores), 1 torch thread(s)" -> "1 thread"; "" when the string gives no thread count."""
    head, _, tail = (hardware or "").rpartition(", ")
    n = tail.split(" ", 1)[0]
    return f"{n} thread{'' if n == '1' else 's'}" if head and "thread" in tail and n.isdigit() else ""


def _nowrap(text: str) -> str:
    """Keep a number on one line in a narrow table column (the page's CSS breaks words anywhere)."""
    return f'<span style="white-space: nowrap">{text}</span>'


def _num(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def markdown(rows: list[dict], dataset: str) -> str:
    """The table as Markdown: units and N / floor in the header, then where the numbers come from."""
    if not rows:
        return (f"No generative checkpoints of `{dataset}` yet: train one, e.g. "
                f"`python -m explorer.training vae-16 --dataset {dataset}`.")
    ns = sorted({r["fid_n"] for r in rows if r["fid_n"] is not None})
    floors = sorted({round(r["fid_floor"], 2) for r in rows if r["fid_floor"] is not None})
    shared = len(ns) == 1 and len(floors) == 1  # the usual case: N and floor once, in the header
    if shared:
        fid_head = f"FID ↓ (N = {ns[0]:,}; floor {floors[0]:.2f})"
    elif len(ns) == 1:
        fid_head = f"FID ↓ (N = {ns[0]:,}; floor)"
    else:
        fid_head = "FID ↓ (N; floor)"
    machines = {_machine(hw) for r in rows if not r["error"] for hw in (r["hardware"], r["sample_hardware"]) if hw}
    one_machine = len(machines) <= 1  # then the machine is named once below, and each row gives its threads
    head = ["Model", "Latent", fid_head, "Sharpness (real = 1)", "Recon. MSE ↓ (per pixel)", _nowrap("Params"),
            "Sampling (ms / image)",
            "Training (wall time)"] + ([] if one_machine else ["Hardware"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    missing, footnotes, param_notes = False, [], []
    for r in rows:
        name = f"**{r['label']}**<br>`{short_name(r['name'])}`"
        if r["error"]:
            cells = [name, f"⚠️ {r['error']}"] + ["–"] * (len(head) - 2)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            continue
        if r["fid"] is None:
            missing = True
            fid = "–\\*"
            if r.get("card_fid") is not None:
                fid += f"<br>(card: {r['card_fid']:.1f}, N = {r['card_fid_n']:,})"
        elif shared:
            fid = f"**{r['fid']:.2f}**"
        else:
            fid = f"**{r['fid']:.2f}** (N = {r['fid_n']:,}; {_num(r['fid_floor'], '.2f')})"
        ms = _num(r["sample_ms_per_image"], ".3g")
        wall = _duration(r["wall_time_s"]) + (f", {r['epochs']} epochs" if r["epochs"] else "")
        if one_machine and _threads(r["hardware"]):
            wall += f", {_threads(r['hardware'])}"
        if r["wall_time_note"]:
            wall += " †"
            footnotes.append(f"† {r['name'].split('/', 1)[-1]}: {r['wall_time_note'].lstrip('+ ')}.")
        mse = (_num(r["test_mse"], ".4f") if r["test_mse"] is not None else
               "– (no encoder)" if r["family"] in ("gan", "ddpm") else "–")
        params = _nowrap(_num(r["parameters"], ",")) if r["parameters"] is not None else "–"
        if r.get("param_note"):
            params += " ‡"
            param_notes.append(f"‡ {short_name(r['name'])}: {r['param_note']}.")
        cells = [name, r["latent"] or "–", fid, _num(r["sample_sharpness"], ".2f"), mse, params, ms, wall]
        if not one_machine:
            hw = r["hardware"] or "–"
            if r["sample_hardware"] and r["sample_hardware"] != r["hardware"]:
                hw += f"; sampled on {r['sample_hardware']}"
            cells.append(hw)
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    notes = [f"Classifier-FID on `{dataset}`'s in-project classifier (never comparable with Inception-FID): "
             "N samples against the first N test images; the floor is real-vs-real (train vs test) at the same N. "
             "Diffusion samples are class-balanced, DDIM-50 with eta = 0 (also what their sampling time is for). Reconstruction MSE on the whole test "
             "split. Sharpness: the fine detail (mean squared 3×3 Laplacian) of the FID's samples over that of the "
             "test images they are scored against; below 1 is blurrier than real, above 1 noisier."]
    if one_machine and machines:
        notes.append(f"Trained and timed on {machines.pop()}.")
    if footnotes:
        notes.append("\n\n" + " ".join(footnotes) + " Its parameters include the frozen autoencoder.")
    if param_notes:
        notes.append("\n\n" + " ".join(param_notes))
    if missing:
        notes.append(f"\n\n\\* not yet scored at the common N (a card's own FID is at its training N, so it "
                     f"does not compare): `{refresh_command(dataset)}` fills it.")
    notes.append(f"\n\nNumbers from each checkpoint's card (config.json, metrics.json); "
                 f"`{refresh_command(dataset)}` regenerates the FID, sharpness and timing columns at one N.")
    return "\n".join(lines) + "\n\n" + " ".join(notes)


# ----------------------------------------------------------------------------- scoring at one N

def _classifier(zoo: Zoo, dataset: str, device):
    """This dataset's classifier from ``zoo``, else from the shipped zoo (training's lookup)."""
    from .evaluation import classifier

    clf = classifier(dataset, zoo.root, device)
    if clf is None:
        name = f"{dataset}/classifier"
        raise CheckpointError(f"classifier-FID needs {name!r}: train it with `{checkpoints.rebuild_command(name)}`")
    return clf


def card_section(block: dict, dataset: str) -> str:
    """The "## Zoo comparison" section of a model card."""
    from .evaluation import FLOOR_SEED, SAMPLE_SEED  # the recipe every model is scored by

    source = block.get("source", "")
    return (f"{SECTION}\n"
            f"Scored like every other model of `{dataset}` in the zoo, at one common N, so the rows of the app's "
            f"Model zoo table compare.\n\n"
            f"| metric | value |\n|---|---|\n"
            f"| classifier-FID (N = {block['fid_n']:,}) | {block['fid']:.4g} |\n"
            f"| real-vs-real floor at the same N | {block['fid_floor']:.4g} |\n"
            + (f"| sample sharpness (real = 1) | {block['sample_sharpness']:.3f} |\n" if "sample_sharpness" in block
               else "") +
            f"| sampling time | {_num(block.get('sample_ms_per_image'), '.4g')} ms per image |\n\n"
            f"Samples from `torch.Generator().manual_seed({SAMPLE_SEED})` against the first {block['fid_n']:,} "
            f"test images; floor: {block['fid_n']:,} train images (`randperm`, seed {FLOOR_SEED}) against the same "
            f"test images. Sampling timed on {block.get('sample_hardware') or 'unknown hardware'}."
            + (f" {source}." if source else "") +
            f"\nRegenerate with `{refresh_command(dataset, block['fid_n'])}`.\n")


def refresh(zoo: Zoo, dataset: str, n: int = ZOO_N, device: str | None = "cpu", force: bool = False,
            classifier=None, log=print) -> dict:
    """Give every generative checkpoint of ``dataset`` a "zoo" block at one N and a card section.

    A block already at this N is kept (unless ``force``); a training FID (metrics.json "fid") at this N
    is reused with its timing; otherwise the model samples by the training recipe and is scored.
    Returns {name: block, or the error message of a checkpoint that could not be scored}."""
    from . import data
    from .evaluation import recipe_fid

    test = train = None
    results = {}
    for name in generative_models(zoo, dataset):
        try:
            info = zoo.info(name)
        except (CheckpointError, ValueError, OSError) as err:
            results[name] = str(err)
            log(f"{name}: skipped, {err}")
            continue
        m, family = info.get("metrics", {}), info["family"]
        if test is None:
            test, train = data.load(dataset, "test").floats(), data.load(dataset, "train").floats()
        n_eff = min(n, len(test), len(train))
        old = m.get(BLOCK) or {}
        if not force and old.get("fid_n") == n_eff and all(k in old for k in BLOCK_KEYS[:3]):
            block = old
            log(f"{name}: zoo block at N = {n_eff} already present (FID {old['fid']:.2f})")
        elif not force and m.get("fid_n") == n_eff and "fid" in m and "fid_floor" in m:
            block = {"fid": m["fid"], "fid_floor": m["fid_floor"], "fid_n": n_eff,
                     "sample_ms_per_image": m.get("sample_ms_per_image"),
                     "sample_hardware": m.get("sample_hardware"),
                     "source": "Reused from the training evaluation (same recipe, same N)",
                     # the same samples' sharpness, when the evaluation measured it: not sampled again
                     **({"sample_sharpness": m["sample_sharpness"]} if "sample_sharpness" in m else {})}
            log(f"{name}: reusing the training FID at N = {n_eff} ({m['fid']:.2f})")
        else:
            try:
                model = zoo.load(name, device=device)
                if classifier is None:
                    classifier = _classifier(zoo, dataset, next(model.parameters()).device)
                block = recipe_fid(model, family, classifier, test, train, n_eff)
            except CheckpointError as err:
                results[name] = str(err)
                log(f"{name}: skipped, {err}")
                continue
            except (RuntimeError, ValueError) as err:  # loads, but cannot sample by the recipe
                results[name] = f"{name} could not be sampled ({type(err).__name__}: {err})"
                log(results[name])
                continue
            block["source"] = "Computed by explorer.zoo_table"
            log(f"{name}: FID {block['fid']:.2f} (floor {block['fid_floor']:.2f}, N = {n_eff}), "
                f"{block['sample_ms_per_image']:.3g} ms per image")
        if "sample_sharpness" not in block:  # a block from before the column: add it from the same samples
            try:
                block = {**block, "sample_sharpness": _sharpness(zoo.load(name, device=device), family, test, n_eff)}
                log(f"{name}: sample sharpness {block['sample_sharpness']:.3f} (real = 1)")
            except (CheckpointError, RuntimeError, ValueError) as err:
                log(f"{name}: sharpness not measured ({type(err).__name__}: {err})")
        directory = zoo.path(name)
        if block is not old:
            cards.write_metrics(directory, {**m, BLOCK: block})
        cards.update_section(directory, SECTION, card_section(block, dataset), new_card=f"# {name}\n")
        results[name] = block
    return results


def _sharpness(model, family: str, test, n: int) -> float:
    """Relative sharpness (metrics.relative_sharpness) of the very samples the FID scores, against the
    same first n test images: the recipe's seed makes them the same samples."""
    from . import metrics
    from .evaluation import recipe_samples

    samples, _ = recipe_samples(model, family, n)
    return round(metrics.relative_sharpness(samples, test[:n]), 4)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.zoo_table", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--root", default=None, help="checkpoint root (default: the shipped checkpoints/)")
    p.add_argument("--n", type=int, default=ZOO_N, help=f"samples per FID, the same for every model (default {ZOO_N})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--force", action="store_true", help="recompute every FID, even one already at this N")
    p.add_argument("--table-only", action="store_true", help="print the table from the cards, compute nothing")
    a = p.parse_args(argv)
    if a.n < 2:
        p.error("--n must be at least 2 (an FID needs a covariance)")
    zoo = Zoo(a.root)
    failed = []
    if not a.table_only:
        if a.threads:
            import torch
            torch.set_num_threads(a.threads)
        results = refresh(zoo, a.dataset, a.n, a.device, a.force)
        failed = [k for k, v in results.items() if isinstance(v, str)]
    print()
    print(markdown(table(zoo, a.dataset), a.dataset))
    if failed:
        print(f"\nnot scored: {', '.join(failed)} (see above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
