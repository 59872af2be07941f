"""The pixel UNet in both memory layouts: one training step and one DDIM-50 sampling call.

    python benchmarks/unet_layout.py [--preset ddpm-linear] [--batch 128] [--sample-batch 16] [--runs 5]
        [--threads 1] [--bf16]

Pixel DDPMs hold their UNet's weights channels-last in float32 and in the default layout under
bfloat16 autocast (``model.memory_format_for(dtype)``; the convolutions' outputs follow the weights).
This measures both layouts in either precision on the machine it runs on, for the two things the
project does with the UNet: a training step (forward, loss, backward, Adam on a batch of ``--batch``) and
``model.sample``'s chain (DDIM-50, eta = 0, for ``--sample-batch`` images, what the Diffusion panel's Run
does, here without its switch to the precision's layout). The layouts alternate within each run so that
drifts in load hit both; medians and ranges are printed, with the minutes an epoch of Fashion-MNIST's
60,000 images would take and the ratio channels-last / default. Float32 unless ``--bf16`` (bfloat16
autocast for both), one torch thread by default, as the CPU runs train and the app samples.
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
    p.add_argument("--sample-batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps of the sampling call")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args(argv)
    import torch

    from explorer import diffusion, models, training

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    family, config, _, lr = training.PRESETS[a.preset]
    x = torch.rand(a.batch, 1, 28, 28)
    y = torch.arange(a.batch) % 10
    layouts = {"default": torch.contiguous_format, "channels-last": torch.channels_last}
    setups = {}
    state = None
    for name, layout in layouts.items():
        model = models.build(family, config)
        if state is None:
            state = model.state_dict()
        model.load_state_dict(state)
        model.net.to(memory_format=layout)
        model.precision = "bfloat16" if a.bf16 else "float32"
        setups[name] = (model, model.configure_optimizers(lr), x.contiguous(memory_format=layout))

    def train_step(model, opt, xb):
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss, _ = model((xb, y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sample(model):  # model.sample's chain, without its switch to the precision's layout
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            diffusion.sample(model.eps_fn(torch.arange(a.sample_batch) % 10), model.schedule, (a.sample_batch, 1, 28, 28),
                             steps=a.steps, sampler="ddim", eta=0.0, clip=model.clip,
                             generator=torch.Generator().manual_seed(0))

    times = {(what, name): [] for what in ("train", "sample") for name in setups}
    for s in setups.values():  # warm-up
        train_step(*s)
        sample(s[0])
    for _ in range(a.runs):
        for name, s in setups.items():
            t0 = time.perf_counter()
            train_step(*s)
            t1 = time.perf_counter()
            sample(s[0])
            times["train", name].append(t1 - t0)
            times["sample", name].append(time.perf_counter() - t1)

    print("\n".join(C.machine_lines()) + f"\ntorch threads  {a.threads}\n")
    precision = "bfloat16 autocast" if a.bf16 else "float32"
    print(f"{a.preset}, {precision}, median of {a.runs} alternating runs")
    batches = 60000 // a.batch
    rows = []
    for (what, name), v in times.items():
        per = (f"{C.median(v) * batches / 60:.1f} min per epoch" if what == "train"
               else f"{1000 * C.median(v) / a.sample_batch:.0f} ms per image")
        label = (f"training step, batch {a.batch}" if what == "train"
                 else f"DDIM-{a.steps}, eta 0, {a.sample_batch} images")
        rows.append([label, name, f"{C.median(v):.3f}", f"{min(v):.3f}-{max(v):.3f}", per])
    print(C.table(["what", "layout", "s (median)", "range", ""], rows))
    for what in ("train", "sample"):
        ratio = C.median(times[what, "channels-last"]) / C.median(times[what, "default"])
        print(f"{what}: channels-last / default = {ratio:.3f}  (< 1: channels-last pays)")


if __name__ == "__main__":
    main()
