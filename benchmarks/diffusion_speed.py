"""DDIM-50 for 16 images: our sampler against diffusers' DDIMScheduler driving the same network.

    python benchmarks/diffusion_speed.py [--checkpoints DIR] [--models NAME ...] [--runs 5] [--threads 1]

diffusers is a benchmark-only dependency (`pip install diffusers`, or put it on PYTHONPATH); without
it only our figures are printed. Both loops call the same eps network with the same labels and
batch, in the same precision (the model's sampling dtype: bfloat16 autocast on CPUs with AVX512-BF16,
``--precision float32`` to compare in float32), so the ratio (ours / diffusers, target <= 1.0) measures
the stepping and sampler overhead; the network alone (50 forward passes) is printed too. Runs alternate between the two so that load
drifts hit both; medians are reported. One torch thread by default, as in the app.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def main(argv=None):
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", default="auto", choices=["auto", "bfloat16", "float32"])
    a = p.parse_args(argv)
    import torch

    from explorer.checkpoints import Zoo

    torch.set_num_threads(a.threads)
    try:
        from diffusers import DDIMScheduler
    except ImportError:
        DDIMScheduler = None
    zoo = Zoo(a.checkpoints)
    names = a.models or zoo.available("ddpm")
    if not names:
        sys.exit(f"no diffusion checkpoints in {zoo.root}")
    print("\n".join(C.machine_lines()) + f"\ntorch threads  {a.threads}\n")
    for name in names:
        m = zoo.load(name, device="cpu")
        m.precision = a.precision
        n, steps = a.batch, a.steps
        labels = torch.arange(n) % m.config.classes
        bf16 = m.sampling_dtype("cpu") == torch.bfloat16

        def amp():  # one autocast region around a whole loop, as our sampler and idiomatic diffusers code do
            return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

        def net(x, t):  # the network as our sampler calls it (float32 output)
            with torch.no_grad():
                return m.net(x, torch.full((n,), int(t)), labels).float()

        def ours():
            return m.sample(n, steps=steps, sampler="ddim", eta=0.0, labels=labels,
                            generator=torch.Generator().manual_seed(0))

        def network_only():
            x = torch.randn(n, *m.sample_shape, generator=torch.Generator().manual_seed(0))
            with amp():
                for t in range(steps):
                    net(x, t * 10)

        def theirs():
            sched = DDIMScheduler(num_train_timesteps=m.config.timesteps,
                                  beta_schedule={"cosine": "squaredcos_cap_v2", "linear": "linear"}[m.config.schedule],
                                  clip_sample=m.clip is not None, set_alpha_to_one=True, timestep_spacing="linspace")
            sched.set_timesteps(steps)
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n, *m.sample_shape, generator=g)
            with amp():
                for t in sched.timesteps:
                    x = sched.step(net(x, t), t, x, eta=0.0, generator=g).prev_sample
            return m.to_image(x)

        fns = {"ours": ours, "network only": network_only}
        if DDIMScheduler is not None and m.config.schedule in ("cosine", "linear"):
            fns["diffusers"] = theirs
        times = {k: [] for k in fns}
        for k in fns:  # warm-up
            fns[k]()
        for _ in range(a.runs):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        print(f"{name}: DDIM-{steps}, batch {n}, median of {a.runs}, network in {'bfloat16' if bf16 else 'float32'}")
        for k, v in times.items():
            print(f"  {k:14s} {statistics.median(v):7.3f} s   ({1000 * statistics.median(v) / n:.1f} ms per image, "
                  f"min {min(v):.3f}, max {max(v):.3f})")
        if "diffusers" in times:
            ratio = statistics.median(times["ours"]) / statistics.median(times["diffusers"])
            print(f"  ratio ours / diffusers = {ratio:.3f}  (target <= 1.0)")
        print()


if __name__ == "__main__":
    main()
