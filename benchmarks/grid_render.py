"""Time to render the Latent grid panel's n x n decoded grid (decode + matplotlib figure + raster).

    python benchmarks/grid_render.py [--checkpoints DIR] [--sizes 10 20 30] [--runs 5] [--span 2.5]

Calls demo.panels["latent_grid"].grid_raster(name, n, span) exactly as the app does, clearing the
raster cache (store._rasters) before every run, for every 2-D encoder model and the first higher-
dimensional one. Reports the median of --runs runs, and separately the median of the decode step
alone (latents.decode_grid), so the figure cost is total - decode. One thread, as in the app.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TARGET_MS = {20: 300.0}


def timed(fn, runs, before=None):
    out = []
    for _ in range(runs):
        if before:
            before()
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main(argv=None):
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 30])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--span", type=float, default=2.5, help="grid range in standard deviations (app default 2.5)")
    args = p.parse_args(argv)

    import app
    import torch

    from explorer import latents

    demo, store = app.create(args.checkpoints)   # sets torch.set_num_threads(1) like the app
    torch.set_num_threads(1)
    try:
        C.print_machine("Latent grid: n x n grid render")
        print(f"  torch threads  {torch.get_num_threads()} (as in the app)")
        print(f"  checkpoints    {C.checkpoints_label(args.checkpoints)}")
        print(f"  span           +-{args.span} sd, median of {args.runs} runs, cache cleared each run\n")
        panel = demo.panels["latent_grid"]
        names = store.encoder_models()
        dims = {}
        for n in names:
            try:
                dims[n] = store.zoo.info(n)["config"].get("latent_dim")
            except Exception:
                dims[n] = None
        chosen = [n for n in names if dims[n] == 2]
        higher = [n for n in names if dims[n] != 2]
        if higher:
            chosen.append(higher[0])
        if not chosen:
            print(f"no encoder checkpoints under {C.checkpoints_label(args.checkpoints)}: nothing to measure")
            return 2

        rows, over, failures = [], [], []
        for name in chosen:
            try:
                t = time.perf_counter()
                view = store.view(name)        # load + encode the test set: not part of the timing
                model = store.model(name)
                load_s = time.perf_counter() - t
                store._rasters.clear()
                panel.grid_raster(name, 5, args.span)   # warm-up: imports matplotlib, first-call costs
            except Exception as err:
                failures.append(f"{name}: {type(err).__name__}: {err}")
                continue
            print(f"  {name}: {view.latent_dim}-D, load + encode {len(view.codes)} test images {load_s:.2f} s")
            for n in args.sizes:
                total = timed(lambda: panel.grid_raster(name, n, args.span), args.runs,
                              before=store._rasters.clear)
                dec = timed(lambda: latents.decode_grid(model, view.plane, n, args.span), args.runs)
                med, dmed = C.median(total), C.median(dec)
                target = TARGET_MS.get(n)
                verdict = "" if target is None else ("OK" if med <= target else "OVER")
                if verdict == "OVER":
                    over.append(f"{name} {n}x{n}: {med:.0f} ms > {target:.0f} ms")
                rows.append([name, f"{view.latent_dim}", f"{n}x{n}", f"{med:.1f}", f"{min(total):.1f}",
                             f"{max(total):.1f}", f"{dmed:.1f}", f"{med - dmed:.1f}",
                             f"{target:.0f} {verdict}" if target else "-"])
        print()
        print(C.table(["model", "dim", "grid", "median ms", "min ms", "max ms", "decode ms", "figure ms",
                       "target"], rows))
        for f in failures:
            print(f"FAILED {f}")
        print("\n" + ("all targets met" if not over and rows else "over target: " + "; ".join(over) if over
                      else "nothing measured"))
        return 0 if rows and not failures else 1
    finally:
        try:
            demo.close()
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main())
