"""The models and samplers on every device this machine has: the CPU always, CUDA where present.

The app and ``zoo.load`` default to CUDA when it is there, and the UI hands CPU tensors and CPU
``torch.Generator`` objects to the models. These tests run the same calls on each device and compare
them with the CPU's results, so on a GPU machine (``python benchmarks/gpu_job.py run`` runs this file there)
they show that the shipped models, the samplers and a training run work on CUDA and agree with the CPU.
On a CPU-only machine the "cuda" cases are skipped and the CPU cases check the tests themselves.
"""
import pytest
import torch

from explorer import checkpoints, training
from explorer.checkpoints import Zoo

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="no CUDA device here"))]
# One checkpoint per family, shipped with the repository.
SHIPPED = ["fashion-mnist/vae-16", "fashion-mnist/ae-16", "fashion-mnist/gamix-vae-16", "fashion-mnist/dae-16",
           "fashion-mnist/dcgan", "fashion-mnist/ldm-vae-16", "fashion-mnist/ddpm-cosine"]
# Weights and codes are the same; kernels differ (TF32 convolutions on CUDA), so pixels agree to ~1e-3.
PIXEL_ATOL = 5e-3


def _zoo_has(name):
    if name not in Zoo().available():
        pytest.skip(f"{name} is not in this checkout's checkpoints/")


@pytest.fixture(scope="module")
def images():
    from explorer import data

    return data.load("fashion-mnist", "test").floats()[:16] if _has_fashion() else torch.rand(16, 1, 28, 28)


def _has_fashion():
    from explorer import data

    try:
        data.load("fashion-mnist", "test")
        return True
    except data.DatasetNotFound:
        return False


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", [n for n in SHIPPED if "ddpm" not in n])
def test_shipped_models_encode_decode_and_sample_on_the_device_as_on_the_cpu(device, name, images):
    _zoo_has(name)
    cpu, dev = Zoo().load(name, device="cpu"), Zoo().load(name, device=device)
    assert next(dev.parameters()).device.type == device
    if dev.has_encoder:
        z = dev.encode(images)  # CPU images into a model on the device
        assert z.device.type == device
        torch.testing.assert_close(z.cpu(), cpu.encode(images), atol=2e-2, rtol=1e-2)
        torch.testing.assert_close(dev.decode(z.cpu()).cpu(), cpu.decode(z.cpu()), atol=PIXEL_ATOL, rtol=0)
    a = dev.sample(8, generator=torch.Generator().manual_seed(3)).cpu()
    b = dev.sample(8, generator=torch.Generator().manual_seed(3)).cpu()
    assert a.shape == (8, 1, 28, 28) and torch.equal(a, b)  # a CPU generator repeats the device's samples
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    if "ldm" not in name:  # latent diffusion samples through its 20-step chain: compared in the next test
        torch.testing.assert_close(a, cpu.sample(8, generator=torch.Generator().manual_seed(3)),
                                   atol=PIXEL_ATOL, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_pixel_diffusion_samples_on_the_device_as_on_the_cpu(device):
    name = "fashion-mnist/ddpm-cosine"
    _zoo_has(name)
    cpu, dev = Zoo().load(name, device="cpu"), Zoo().load(name, device=device)
    labels = torch.arange(4)
    kw = dict(steps=10, labels=labels)
    a = dev.sample(4, generator=torch.Generator().manual_seed(5), **kw).cpu()
    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(dev.sample(4, x_T=x_T, **kw).cpu(), a, atol=1e-5, rtol=0)  # x_T: the same chain
    # bfloat16 where the device has it natively, float32 on others: the chains agree to a few grey levels
    ref = cpu.sample(4, generator=torch.Generator().manual_seed(5), **kw)
    assert (a - ref).abs().mean() < 0.05
    steps = list(dev.sample_progressive(2, steps=5, sampler="ddpm", eta=1.0, guidance=2.0, labels=labels[:2],
                                        generator=torch.Generator().manual_seed(1), decode=True))
    assert len(steps) == 5 and steps[-1].pred_x0.device.type == device
    assert all(0 <= float(s.pred_x0.min()) and float(s.pred_x0.max()) <= 1 for s in steps)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("preset,config", [("vae-2d", {"channels": 8, "hidden": 32}),
                                           ("ddpm-cosine", {"channels": 8, "mults": [1, 2], "timesteps": 50})])
def test_a_tiny_training_run_on_the_device_ships_weights_the_cpu_loads(device, preset, config, tmp_path):
    out = training.train(preset, "digits", epochs=1, out=tmp_path, limit=256, progress=False, device=device,
                         config=config, evaluate=preset == "vae-2d")
    info = checkpoints.read_config(out, preset)
    assert info["training"]["hardware"] and info["training"]["epochs"] == 1
    model = checkpoints.load_dir(out, "cpu", preset)
    x = model.sample(4, generator=torch.Generator().manual_seed(0), **({"steps": 5} if preset != "vae-2d" else {}))
    assert x.shape == (4, 1, 28, 28) and torch.isfinite(x).all()
