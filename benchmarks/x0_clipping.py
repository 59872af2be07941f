"""What the sampler does with the predicted x_0, and where the eta = 0 clutter comes from.

    python benchmarks/x0_clipping.py [--models fashion-mnist/ddpm-cosine ...] [--n 256] [--steps 50] [--eta 0]
                                     [--rules none,clip,dynamic] [--percentile 0.995] [--guidance 1] [--threads N]
                                     [--spacing leading|trailing]

For each pixel diffusion checkpoint and each rule for x_0_hat = (x_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t):

- ``none``: x_0_hat as predicted;
- ``clip``: clamped to the data range [-1, 1], what the shipped sampler does (``DDPM.clip``);
- ``dynamic``: Imagen's dynamic thresholding (``diffusion.dynamic_threshold``, percentile --percentile),

it draws the same N class-balanced samples (seed 1234, guidance --guidance, DDIM --steps with --eta, timesteps
--spacing, default the model's own) and prints the
classifier-FID against the first N test images with the real-vs-real floor at that N, and the share of
"clutter": samples whose requested class gets probability < 0.5 from the in-project classifier. It writes
an 8x8 grid of the first 64 samples per model and rule to benchmarks/out/.

Where it goes wrong: during each run it records, per step, the share of x_0_hat's pixels outside [-1, 1]
before the rule, and the classifier's label of the x_0_hat the step used; the table then shows, for the
clutter and the clean samples apart, how far out of range x_0_hat is at each t and from which t on its label
stays the final one.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def main(argv=None):
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=["fashion-mnist/ddpm-cosine", "fashion-mnist/ddpm-linear"])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance w (1: the conditional model)")
    p.add_argument("--rules", default="none,clip,dynamic")
    p.add_argument("--percentile", type=float, default=0.995)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--spacing", default=None, choices=["leading", "trailing"],
                   help="timesteps of the chain (default: the model's own; the README's x_0 rows used leading)")
    a = p.parse_args(argv)
    import torch

    from explorer import data, diffusion, evaluation, metrics
    from explorer.checkpoints import Zoo

    if a.threads:
        torch.set_num_threads(a.threads)
    C.print_machine(f"x_0 rules {a.rules} at DDIM-{a.steps}, eta {a.eta:g}, guidance {a.guidance:g}, N = {a.n}")
    os.makedirs(OUT, exist_ok=True)
    zoo = Zoo(a.checkpoints)
    rules = [r.strip() for r in a.rules.split(",") if r.strip()]
    for name in a.models:
        model = zoo.load(name, device="cpu")
        dataset = zoo.info(name)["dataset"]
        clf = evaluation.classifier(dataset, a.checkpoints, "cpu")
        test, train = data.load(dataset, "test").floats(), data.load(dataset, "train").floats()
        n = min(a.n, len(test))
        ref = metrics.feature_stats(clf, test[:n])
        floor = metrics.frechet_distance(*metrics.feature_stats(clf, evaluation.floor_images(train, n)), *ref)
        labels = torch.arange(n) % model.config.classes
        print(f"\n{name}: shipped rule for x_0_hat: clamp to [-{model.clip:g}, {model.clip:g}] (DDPM.clip); "
              f"floor {floor:.2f} at N = {n}")
        rows, studies = [], {}
        for rule_name in rules:
            base = {"none": None, "clip": model.clip,
                    "dynamic": diffusion.dynamic_threshold(a.percentile, model.clip)}[rule_name]
            outside, used = [], []

            def rule(x0, base=base, outside=outside, used=used):
                outside.append((x0.abs() > 1).float().mean(dim=(1, 2, 3)))
                x0 = diffusion.limit_x0(x0, base)
                used.append(x0)
                return x0

            g = torch.Generator().manual_seed(evaluation.SAMPLE_SEED)
            t0 = time.perf_counter()
            xs, out_b, used_b = [], [], []
            for y in labels.split(a.batch):
                outside.clear()
                used.clear()
                xs.append(model.sample(len(y), steps=a.steps, eta=a.eta, guidance=a.guidance, labels=y,
                                       generator=g, clip=rule, spacing=a.spacing))
                out_b.append(torch.stack(outside, 1))
                used_b.append(torch.stack(used, 1))
            seconds = time.perf_counter() - t0
            x = torch.cat(xs)
            fid = metrics.frechet_distance(*metrics.feature_stats(clf, x), *ref)
            clutter = metrics.off_class(clf, x, labels)
            tag = "" if (a.eta, a.guidance) == (0.0, 1.0) else f"_eta{a.eta:g}_w{a.guidance:g}"
            evaluation.grid_png(x, os.path.join(OUT, f"x0_{name.replace('/', '_')}_{rule_name}{tag}.png"), scale=3)
            rows.append([rule_name, f"{fid:.2f}", f"{floor:.2f}", f"{int(clutter[:64].sum())} / 64",
                         f"{100 * clutter.float().mean():.1f}%", f"{seconds:.0f}"])
            studies[rule_name] = (torch.cat(out_b), torch.cat(used_b), clutter)
            print(f"  {rule_name:8s} FID {fid:6.2f}  clutter {int(clutter.sum())}/{n}  ({seconds:.0f} s)", flush=True)
        print(C.table(["x_0 rule", "FID", "floor", "clutter in the first 64", "clutter, all N", "s"], rows))
        ts = diffusion.timesteps(model.config.timesteps, a.steps)
        for rule_name, (outside, used, clutter) in studies.items():
            if not clutter.any() or clutter.all():
                continue
            with torch.no_grad():  # the classifier's label of the x_0_hat each step used (images in [0, 1])
                flat = used.reshape(-1, *used.shape[2:])
                lab = torch.cat([clf.predict_proba(model.to_image(flat[i:i + 2000])).argmax(1)
                                 for i in range(0, len(flat), 2000)]).reshape(used.shape[:2])
            final = lab[:, -1:]
            stays = torch.flip(torch.cumprod(torch.flip((lab == final).int(), [1]), 1), [1]).bool()
            print(f"\n  {rule_name}: x_0_hat along the chain, clutter ({int(clutter.sum())}) vs clean "
                  f"({int((~clutter).sum())}) samples")
            table = []
            for i in sorted(set(range(0, len(ts), max(1, len(ts) // 10))) | {len(ts) - 1}):
                table.append([ts[i], f"{100 * outside[clutter, i].mean():.1f}%", f"{100 * outside[~clutter, i].mean():.1f}%",
                              f"{100 * stays[clutter, i].float().mean():.0f}%",
                              f"{100 * stays[~clutter, i].float().mean():.0f}%"])
            print(C.table(["t", "pixels out of [-1,1]: clutter", "clean", "label already final: clutter", "clean"],
                          table))
    print(f"\ngrids: {OUT}/x0_*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
