"""One training step of a pixel DDPM preset (forward, backward, Adam) in both memory layouts.

    python benchmarks/train_step.py [--preset ddpm-linear] [--batch 128] [--runs 5] [--threads 1] [--bf16]

The training loop keeps the pixel UNet's weights and batches channels-last (``model.memory_format``); this
measures what that buys against the default layout on the machine it runs on. The two layouts alternate
(each run times ``--steps`` steps of each after one warm-up step) so that drifts in load hit both; medians
and the full range are printed, with the seconds an epoch of Fashion-MNIST's 60,000 images would take.
Float32 by default, as the CPU continuation trains (``--no-bf16``); ``--bf16`` times bfloat16 autocast.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def main(argv=None):
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--preset", default="ddpm-linear", choices=["ddpm-linear", "ddpm-cosine"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args(argv)
    import torch

    from explorer import models, training

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    family, config, _, lr = training.PRESETS[a.preset]
    base = models.build(family, config)
    x = torch.rand(a.batch, 1, 28, 28)
    y = torch.arange(a.batch) % 10
    layouts = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}
    setups = {}
    for name, layout in layouts.items():
        model = models.build(family, config)
        model.load_state_dict(base.state_dict())
        model.to(memory_format=layout)
        setups[name] = (model, model.configure_optimizers(lr), x.contiguous(memory_format=layout))

    def step(model, opt, xb):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss, _ = model((xb, y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = {name: [] for name in setups}
    for name, s in setups.items():
        step(*s)  # warm-up
    for _ in range(a.runs):
        for name, s in setups.items():
            t0 = time.perf_counter()
            for _ in range(a.steps):
                step(*s)
            times[name].append((time.perf_counter() - t0) / a.steps)

    print("\n".join(C.machine_lines()) + f"\ntorch threads  {a.threads}\n")
    print(f"{a.preset}: one training step, batch {a.batch}, {'bfloat16 autocast' if a.bf16 else 'float32'}, "
          f"median of {a.runs} runs of {a.steps} steps")
    batches = 60000 // a.batch
    rows = [[name, f"{C.median(v):.3f}", f"{min(v):.3f}-{max(v):.3f}", f"{C.median(v) * batches / 60:.1f}"]
            for name, v in times.items()]
    print(C.table(["layout", "s per step", "range", "min per epoch"], rows))
    ratio = C.median(times["channels-last"]) / C.median(times["contiguous"])
    print(f"\nchannels-last / contiguous = {ratio:.3f}  (the loop trains channels-last; < 1 means it pays)")


if __name__ == "__main__":
    main()
