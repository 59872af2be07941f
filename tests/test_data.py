import hashlib

import numpy as np
import pytest
import torch

from explorer import data


def _write_dataset(root, n_train=12, n_test=5, gz=True):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img, lbl = data.FILES[split]
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        data.write_idx(root / (img + suffix), images)
        data.write_idx(root / (lbl + suffix), labels)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    data.write_idx(path, arr)
    np.testing.assert_array_equal(data.read_idx(path), arr)


def test_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        data.read_idx(bad)
    arr = np.zeros((3, 28, 28), np.uint8)
    data.write_idx(tmp_path / "t", arr)
    truncated = tmp_path / "truncated"
    truncated.write_bytes((tmp_path / "t").read_bytes()[:-10])
    with pytest.raises(ValueError, match="header says"):
        data.read_idx(truncated)


def test_load_from_explorer_data(tmp_path, monkeypatch):
    arrays = _write_dataset(tmp_path / "fashion-mnist")
    monkeypatch.setenv("EXPLORER_DATA", str(tmp_path))
    ds = data.load("fashion-mnist", "test")
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (5, 28, 28)
    np.testing.assert_array_equal(ds.labels.numpy(), arrays["test"][1])
    assert ds.classes[9] == "Ankle boot"
    x = ds.floats()
    assert x.shape == (5, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1


def test_download_verifies_checksums(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _write_dataset(src)
    md5 = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in src.iterdir()}
    out = data.download("mnist", root=tmp_path / "dst", base_url=src.as_uri() + "/", md5=md5, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(md5)
    assert data.read_idx(out / "t10k-images-idx3-ubyte.gz").shape == (5, 28, 28)

    wrong = dict(md5, **{"train-labels-idx1-ubyte.gz": "0" * 32})
    with pytest.raises(ValueError, match="MD5"):
        data.download("mnist", root=tmp_path / "dst2", base_url=src.as_uri() + "/", md5=wrong, progress=False)
    assert not (tmp_path / "dst2" / "train-labels-idx1-ubyte.gz").exists()


def test_missing_dataset_names_both_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "search_dirs", lambda name: [tmp_path / name])
    monkeypatch.setitem(data.SOURCES, "fashion-mnist",
                        dict(data.SOURCES["fashion-mnist"], url=(tmp_path / "nowhere").as_uri() + "/"))
    with pytest.raises(data.DatasetNotFound) as err:
        data.load("fashion-mnist")
    msg = str(err.value)
    assert "data.download('fashion-mnist')" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "EXPLORER_DATA" in msg


def test_mnist_5k_is_its_own_shuffled_split():
    train, test = data.load("mnist-5k", "train"), data.load("mnist-5k", "test")
    assert len(train) == 4000 and len(test) == 1000
    assert set(test.labels.tolist()) == set(range(10))  # the shipped file is sorted by label
    assert train.classes == [str(i) for i in range(10)]


def test_shipped_assets_load():
    ds = data.load_assets("fashion-mnist")
    assert ds.images.shape[1:] == (28, 28) and len(ds) >= 5000
    assert ds.labels.max() <= 9 and len(set(ds.labels.tolist())) == 10


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("cifar")
    with pytest.raises(ValueError, match="split"):
        data.load("digits", "val")
