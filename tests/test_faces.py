"""The face set: a pure function of its seed (recorded hashes), balanced factors, atomic first-use build."""
import numpy as np
import pytest

from explorer import data, datasets, faces

# SHA-256 of faces 0..7 and 24000..24003 (the first test faces) of seed 0, python_avatars 1.4.1 + resvg-py 0.5.0
FIRST_TRAIN = "4fa8939fad8f626cf6942f5134c16f7065f34dea2c91b1e616dd9bddce81a98f"
FIRST_TEST = "e3439dff8c2c5eb1af873b308f357af6d3cac936056d36fd61dd88096deb52c0"
FIRST_FACTORS = [[3, 3, 4, 0, 4, 2, 2, 6, 2, 2], [7, 4, 4, 1, 0, 2, 2, 0, 3, 3]]


def test_the_first_faces_hash_to_recorded_values():
    images, factors = faces.make(0, 0, 8)
    assert images.shape == (8, 64, 64, 3) and images.dtype == np.uint8
    assert faces.digest(images) == FIRST_TRAIN
    assert factors[:2].tolist() == FIRST_FACTORS
    assert faces.digest(faces.make(0, 24000, 24004)[0]) == FIRST_TEST
    # any face alone: the same pixels as inside a batch
    np.testing.assert_array_equal(faces.make(0, 5, 6)[0][0], images[5])
    assert faces.digest(faces.make(1, 0, 8)[0]) != FIRST_TRAIN  # another seed, another set


def test_the_factor_distribution_is_the_one_written_down():
    f = np.stack([faces.draw_factors(0, i) for i in range(4000)])
    names = faces.FACTOR_NAMES
    for j, name in enumerate(names):
        counts = np.bincount(f[:, j], minlength=len(faces.FACTORS[name][0]))
        if name in faces.HALF_NONE:  # "none" one time in two
            assert abs(counts[0] / len(f) - 0.5) < 0.03
        else:  # uniform over the values
            assert counts.min() / counts.max() > 0.8, (name, counts)
    smiling = faces.binary_attribute(f, "smiling")
    assert abs(smiling.mean() - 2 / 8) < 0.03


def test_a_face_is_white_around_the_head_and_coloured_inside():
    images, factors = faces.make(0, 0, 4)
    assert (images[:, 0, 0] == 255).all()          # the plain background in the corner
    assert images[:, 24:40, 24:40].std() > 10      # a face in the middle


def test_the_registry_entry_loads_the_generated_set(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(faces, "N_TRAIN", 12)
    monkeypatch.setattr(faces, "N_TEST", 6)
    test = data.load("faces", "test")  # built at first use: train and test files
    assert test.images.shape == (6, 64, 64, 3) and test.factors.shape == (6, len(faces.FACTORS))
    assert test.classes == faces.CLASSES and (test.labels.numpy() == test.factors[:, 0].numpy()).all()
    assert faces.digest(test.images.numpy()[:2]) == faces.digest(faces.make(0, 12, 14)[0])  # faces 12, 13
    assert test.floats().shape == (6, 3, 64, 64)
    assert sorted(p.name for p in (tmp_path / "latent-space-explorer" / "faces").iterdir()) == [
        faces.cache_path(0, 64, "test").name, faces.cache_path(0, 64, "train").name]  # nothing half-written
    assert datasets.get("faces").factors["mouth"][0] == "smile"


def test_an_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(faces.np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        faces.build(0, n=4, workers=1, progress=False)
    assert list((tmp_path / "latent-space-explorer" / "faces").iterdir()) == []
