"""The attribute-vector measurement (explorer/effects.py) on a planted model whose answer is known."""
import numpy as np
import torch

from explorer import datasets, effects

SPEC = datasets.DatasetSpec(
    "planted", (1, 8, 8), ["a", "b"], lambda split: None,
    factors={"mouth": ["smile", "frown", "open"], "glasses": ["none", "round"]},
    binary={"smiling": ("mouth", ["smile"]), "glasses": ("glasses", ["round"])},
    attribute_presets={"smile": ("smiling", "not smiling"), "glasses": ("glasses", "not glasses"),
                       "frown → open": ("mouth: open", "mouth: frown")})  # not yes/no: not in the table


def _planted(n=600, seed=0):
    """Codes that are the factors one-hot (5-D), images that carry them as pixels, a judge that reads them back:
    the decoder is the identity on codes and the judge the argmax of each factor's block."""
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, 3, n), rng.integers(0, 2, n)], 1)
    onehot = np.concatenate([np.eye(3)[f[:, 0]], np.eye(2)[f[:, 1]]], 1)            # (N, 5)
    images = torch.zeros(n, 1, 8, 8)
    images.view(n, -1)[:, :5] = torch.as_tensor(onehot, dtype=torch.float32)      # the code sits in the pixels

    def encode(x):
        return x.reshape(len(x), -1)[:, :5]

    def decode(z):
        x = torch.zeros(len(z), 1, 8, 8)
        x.view(len(z), -1)[:, :5] = z
        return x

    def judge(x):
        flat = x.reshape(len(x), -1)
        return [torch.softmax(50 * flat[:, :3], -1), torch.softmax(50 * flat[:, 3:5], -1)]
    return images, f, encode, decode, judge


def test_the_smile_vector_turns_faces_smiling_and_leaves_glasses_alone():
    images, f, encode, decode, judge = _planted()
    out = effects.measure(encode, decode, judge, images, f, SPEC, strengths=(0.25, 1.0), n_images=200)
    by = {e.vector: e for e in out}
    assert set(by) == {"smile", "glasses"}  # only the yes/no presets
    smile = by["smile"]
    assert smile.n == 200 and smile.hit_before == 0.0
    # v = mean(smile) - mean(not smile) = (+1, -1/2, -1/2, 0, 0) up to sampling: s = 1 makes every image smile
    assert smile.hit[1.0] == 1.0 and smile.hit[0.25] < 0.5  # and a small step does not: a monotone trend
    assert smile.kept[1.0]["glasses"] == 1.0 and smile.kept[1.0]["mouth"] == 0.0
    glasses = by["glasses"]
    assert glasses.hit[1.0] == 1.0 and glasses.kept[1.0]["mouth"] == 1.0
    text = effects.summary(SPEC, out, s=1.0)
    assert "| **smile** | 200 | 0% | **100%** | *0%* | 100% |" in text
    assert effects.from_json(effects.to_json(out))[0] == out[0]  # the JSON round trip


def test_a_vector_that_also_moves_another_factor_shows_it():
    images, f, encode, decode, judge = _planted()
    # plant a correlation: every smiling face also wears glasses, so "smile" drags glasses in
    f[:, 1] = np.where(f[:, 0] == 0, 1, f[:, 1] * 0)
    onehot = np.concatenate([np.eye(3)[f[:, 0]], np.eye(2)[f[:, 1]]], 1)
    images.view(len(images), -1)[:, :5] = torch.as_tensor(onehot, dtype=torch.float32)
    smile = {e.vector: e for e in effects.measure(encode, decode, judge, images, f, SPEC, strengths=(1.0,))}["smile"]
    assert smile.hit[1.0] == 1.0 and smile.kept[1.0]["glasses"] < 0.05
