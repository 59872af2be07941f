"""Attribute vectors on a generator (no encoder): prior samples sorted by a classifier, the DCGAN way."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch

from explorer import latents
from explorer.checkpoints import Zoo
from explorer.ui import store as store_module
from explorer.ui.attributes import AttributePanel, GENERATED_INPUT
from explorer.ui.store import Store

D = 8
PLANTED = torch.nn.functional.normalize(torch.arange(1.0, D + 1) * torch.tensor([1, -1] * (D // 2)), dim=0)


class PlantedGenerator(torch.nn.Module):
    """Images whose brightness is sigmoid(3 z·u): the planted direction u decides the class."""
    latent_dim = D
    has_encoder = False

    def sample_latent(self, n, generator=None, temperature=1.0):
        return temperature * torch.randn(n, D, generator=generator)

    def decode(self, z):
        level = torch.sigmoid(3 * torch.as_tensor(z, dtype=torch.float32) @ PLANTED)
        return level[:, None, None, None].expand(-1, 1, 28, 28).clone()


class BrightnessClassifier(torch.nn.Module):
    """Two classes, "dark" and "light", sure of itself far from mid-grey."""

    def predict_proba(self, x):
        light = torch.sigmoid(30 * (x.mean(dim=(1, 2, 3)) - 0.5))
        return torch.stack([1 - light, light], dim=1)


@pytest.fixture
def planted(monkeypatch, tmp_path):
    store = Store(Zoo(tmp_path), device="cpu")
    name = "planted/gan"
    monkeypatch.setitem(store._models, name, PlantedGenerator())
    monkeypatch.setattr(store, "classifier", lambda dataset: BrightnessClassifier())
    monkeypatch.setattr(store, "dataset_of", lambda n: "planted")
    monkeypatch.setattr(store_module.data, "class_names", lambda ds: ["dark", "light"])
    from explorer import datasets  # the planted dataset, registered for this test only (one entry, one place)

    monkeypatch.setitem(datasets._REGISTRY, "planted", datasets.DatasetSpec(
        "planted", (1, 28, 28), ["dark", "light"], lambda split: None, attribute_presets={"lighter": ("light", "dark")}))
    monkeypatch.setattr(store_module, "GENERATED", 2000)
    panel = AttributePanel(store)
    monkeypatch.setattr(panel, "is_generator", lambda n: True)
    return panel, store, name


def test_confident_labels_keep_only_sure_rows():
    probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.02, 0.98], [0.5, 0.5]])
    np.testing.assert_array_equal(latents.confident_labels(probs, 0.9), [0, -1, 1, -1])
    np.testing.assert_array_equal(latents.confident_labels(probs, 0.5), [0, 0, 1, 0])


def test_the_generators_vector_recovers_the_planted_direction(planted):
    panel, store, name = planted
    samples = store.generated(name)
    assert samples.codes.shape == (2000, D) and samples.images.shape == (2000, 28, 28)
    unsure = samples.labels == -1
    assert 0 < unsure.mean() < 0.5                    # near mid-grey the classifier is not sure: left out
    assert (samples.confidence[~unsure] >= 0.9).all()
    v = panel.vector(name, "light", "dark")
    cosine = float(v @ PLANTED.numpy() / np.linalg.norm(v))
    assert cosine > 0.97
    # the sample set is made once, with a fixed seed
    assert store.generated(name) is samples
    counts = panel.vector_note(name, "light", "dark")
    assert f"{panel.group_size(name, 'light'):,} light samples" in counts and "p ≥ 0.9" in counts


def test_moving_a_dark_sample_along_v_makes_it_light(planted):
    panel, store, name = planted
    i = panel.random_index(name, "dark", seed=0)
    x, what, z, v = panel.prepare(name, "light", "dark", GENERATED_INPUT, i, None)
    assert "generated sample" in what and "dark" in what
    np.testing.assert_array_equal(z, store.generated(name).codes[i])  # no encoder: the sample's own code
    curves, _ = panel.measure(name, panel.decode(name, latents.along(z, v, np.linspace(-2, 2, 9))), "light", "dark")
    p_light = curves["p(light)"]
    assert p_light[-1] > 0.9 > p_light[0] and np.all(np.diff(p_light) >= -1e-6)  # monotone towards "light"


def test_a_generator_takes_no_upload_and_has_no_anomaly_score(planted):
    panel, _, name = planted
    with pytest.raises(gr.Error, match="no encoder"):
        panel.prepare(name, "light", "dark", "Upload", 0, "/etc/passwd")
    _, text, gallery = panel.on_anomaly(name, "uniform noise", 95, GENERATED_INPUT, None)
    assert "no encoder" in text and gallery == []
    assert panel.input_kinds(name) == [GENERATED_INPUT]


def test_an_empty_group_is_named(planted, monkeypatch):
    panel, store, name = planted
    monkeypatch.setattr(store_module, "CONFIDENT", 1.01)  # above any probability: no sample counts
    store._generated.clear()
    with pytest.raises(gr.Error, match="no sample of planted/gan is in group 'light'"):
        panel.vector(name, "light", "dark")


def test_a_late_result_for_the_model_a_session_left_is_not_drawn(planted, monkeypatch):
    """The tab's first Apply and anomaly histogram (seconds, for the default model) can finish after the
    student has switched models; they must not overwrite the new model's panel. Another session is untouched."""
    panel, store, name = planted
    monkeypatch.setitem(store._models, "planted/other-model", PlantedGenerator())
    me, other = SimpleNamespace(session_hash="me"), SimpleNamespace(session_hash="other")
    args = (name, "light", "dark", GENERATED_INPUT, 0, None, 1.0, 3)
    panel.on_model(name, request=me)
    fresh = panel.on_apply(*args, request=me)                   # the session's current model: drawn
    assert isinstance(fresh[0], np.ndarray)
    panel.on_model("planted/other-model", request=me)            # the student switches
    skip = gr.skip()
    assert panel.on_apply(*args, request=me) == (skip,) * 6       # the old model's late Apply draws nothing
    assert panel.on_anomaly(name, "uniform noise", 95, GENERATED_INPUT, None, request=me) == (skip,) * 3
    assert panel.on_live(*args, request=me) == skip
    assert isinstance(panel.on_apply(*args, request=other)[0], np.ndarray)   # another student still on it
    assert isinstance(panel.on_apply(*args)[0], np.ndarray)                  # scripts (no session) always are


def test_a_generator_is_on_the_latent_grid_through_a_plane_of_its_prior_samples(planted, monkeypatch):
    from explorer.ui.latent_grid import LatentGridPanel

    _, store, name = planted
    view, gen = store.view(name), store.generated(name)
    assert np.array_equal(view.codes, gen.codes) and view.coords.shape == (len(gen.codes), 6)
    assert view.classes == ["dark", "light", "unsure (p < 0.9)"]
    assert (view.labels == 2).sum() == (gen.labels < 0).sum() > 0  # the unsure samples: a class of their own
    assert np.array_equal(view.labels[gen.labels >= 0], gen.labels[gen.labels >= 0])
    grid = LatentGridPanel(store)
    assert grid.is_prior(view) and "prior samples" in grid.headline(name)
    # a point of the plane decodes like the generator's own decode of that code
    monkeypatch.setattr(store.decoders, "decode", lambda n, z: store.model(n).decode(torch.as_tensor(z, dtype=torch.float32)))
    values = grid.centre(name)
    values[0] += 1.5
    z = view.plane.inverse_transform(values[None])
    want = store.model(name).decode(torch.as_tensor(z, dtype=torch.float32))[0, 0].numpy()
    assert np.abs(grid.decode_coords(name, values) / 255 - want).max() <= 0.5 / 255 + 1e-6
