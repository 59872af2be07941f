"""A folder of your own images becomes a dataset (explorer/folders.py): layout, conversions, the split, every
error, nothing half-written, registration, and a preset training on it. Folders are made here with PIL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer import data, datasets, folders

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private user cache; the folder datasets registered during the test are dropped after it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield folders.root()
    folders.register_all(tmp_path / "no-datasets-here")


def solid(path, colour, size=(12, 10), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def noise(path, size=(12, 10), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def leftovers(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


# ------------------------------------------------------------------ layout and pixels
def test_classes_from_subfolders_keep_each_image_with_its_label(tmp_path, cache):
    src = tmp_path / "src"
    for i in range(6):  # red PNGs of mixed sizes, one nested deeper
        solid(src / "red" / ("deep/" if i == 0 else "") / f"{i}.png", (255, 0, 0), (10 + 7 * i, 9 + 3 * i))
    for i in range(4):
        solid(src / "blue" / f"{i}.jpg", (0, 0, 255), (30, 20 + i))
    (src / "notes.txt").write_text("beside the class folders")
    (src / "blue" / ".DS_Store").write_bytes(b"\0\0")  # hidden: ignored, not even counted
    info = folders.build(src, "colours", size=16, channels=3, progress=False)

    assert info["classes"] == ["blue", "red"] and info["shape"] == [3, 16, 16]
    assert info["counts"]["images"] == 10 and info["counts"]["train"] + info["counts"]["test"] == 10
    assert info["counts"]["per_class"] == {"blue": [3, 1], "red": [5, 1]}  # every class in both splits
    assert info["skipped"] == [{"file": "notes.txt", "reason": "outside the class subfolders"}]
    on_disk = json.loads((cache / "colours" / "dataset.json").read_text())
    assert on_disk["source"] == str(src.resolve()) and on_disk["skipped_count"] == 1
    for split in ("train", "test"):
        ds = data.load("colours", split)
        assert ds.images.shape == (info["counts"][split], 16, 16, 3) and ds.classes == ["blue", "red"]
        for img, label in zip(ds.images.numpy().astype(int), ds.labels.tolist()):
            red, blue = img[..., 0].mean(), img[..., 2].mean()
            assert (red > 240 and blue < 15) if label == 1 else (blue > 230 and red < 25)
    assert data.load_assets("colours").images.shape == (2, 16, 16, 3)  # what the app shows


def test_flat_folder_is_one_class_and_grey_uses_luma(tmp_path, cache):
    src = tmp_path / "flat"
    for i in range(5):
        solid(src / f"{i}.png", (200, 100, 50), (8 + i, 8))
    info = folders.build(src, "flat", size=8, channels=1, progress=False)
    assert info["classes"] == ["all"] and info["shape"] == [1, 8, 8]
    ds = data.load("flat", "train")
    assert ds.images.shape == (4, 8, 8) and set(ds.labels.tolist()) == {0}
    assert (ds.images.numpy() == 124).all()  # ITU-R 601: 0.299*200 + 0.587*100 + 0.114*50


def test_read_image_conversions(tmp_path):
    def read(img, size=4, channels=3, name="x.png"):
        img.save(tmp_path / name)
        return folders.read_image(tmp_path / name, size, channels, max_pixels=10 ** 6)

    assert (read(Image.new("RGBA", (8, 8), (255, 0, 0, 0))) == 255).all()  # fully transparent: white
    half = read(Image.new("RGBA", (8, 8), (0, 0, 0, 128)))
    assert (abs(half.astype(int) - 127) <= 1).all()  # half-transparent black on white
    assert (read(Image.new("LA", (8, 8), (0, 0)), channels=1) == 255).all()
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 0, 0, 255, 0])
    p.info["transparency"] = 0
    assert (read(p) == 255).all()
    assert (read(Image.new("I;16", (8, 8), 65535), channels=1) == 255).all()  # 16-bit grey scaled to 8 bits
    assert (read(Image.new("I;16", (8, 8), 257 * 100), channels=1) == 100).all()
    grey = read(Image.new("L", (8, 8), 77))
    assert grey.shape == (4, 4, 3) and (grey == 77).all()  # grey replicated to 3 channels
    wide = Image.new("L", (30, 10), 0)  # left and right thirds black, the centred square white
    wide.paste(255, (10, 0, 20, 10))
    assert (read(wide, size=8, channels=1) >= 240).all()  # centre-cropped (a squeeze would give ~85 mean)
    assert read(Image.new("CMYK", (9, 9), (0, 0, 0, 0)), name="c.jpg").mean() > 250  # CMYK JPEG: white
    sideways = Image.new("L", (40, 20), 0)  # stored wide, left half black; EXIF 6: shown turned 90 degrees clockwise
    sideways.paste(255, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(tmp_path / "phone.jpg", exif=exif)
    upright = folders.read_image(tmp_path / "phone.jpg", 8, 1, max_pixels=10 ** 6).astype(int)
    assert upright[:2].mean() < 40 and upright[-2:].mean() > 215  # black on top, white below


def test_split_is_stratified_seeded_and_never_empty():
    labels = np.repeat([0, 1, 2], [50, 7, 1])
    train, test = folders.split_indices(labels, 0.1, seed=3)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(58))
    assert [int((labels[test] == c).sum()) for c in range(3)] == [5, 1, 0]  # round(0.1 n), at least 1 of n >= 2
    again = folders.split_indices(labels, 0.1, seed=3)
    assert (again[0] == train).all() and (again[1] == test).all()
    assert not (folders.split_indices(labels, 0.1, seed=4)[1] == test).all()
    train, test = folders.split_indices(np.array([0, 1, 2]), 0.5, seed=0)  # every class a single image
    assert len(train) == 2 and len(test) == 1


# ------------------------------------------------------------------ errors and skipped files
def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = folders.main(["build", *map(str, args), "--quiet"])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("a file", "not a folder"),
    ("empty", "no files in it"),
    ("non-images", r"no readable image among 2 file\(s\) \(a.txt: not an image; b.png: not an image\)"),
    ("one image", "only one readable image; a dataset needs at least 2"),
])
def test_unusable_folders_give_one_line_and_leave_nothing(tmp_path, cache, capsys, case, message):
    src = tmp_path / "src"
    if case == "a file":
        src.write_text("x")
    elif case != "missing":
        src.mkdir()
        (src / ".hidden.png").write_bytes(b"")
    if case == "non-images":
        (src / "a.txt").write_text("hello")
        (src / "b.png").write_bytes(b"not really a png")
    if case == "one image":
        solid(src / "only.png", (1, 2, 3))
        (src / "z.txt").write_text("not an image")
    with pytest.raises(folders.FolderDatasetError, match=message):
        folders.build(src, "mine", progress=False)
    rc, out, err = _cli(capsys, src, "--name", "mine")
    assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: ")
    assert "Traceback" not in err and message.split("\\")[0].split("(")[0] in err
    assert leftovers(cache) == [] and "mine" not in datasets.names()


@pytest.mark.parametrize("args, message", [
    (["--name", "Bad_Name"], "lowercase letters, digits and dashes"),
    (["--name", "mnist"], "built-in dataset's name"),
    (["--name", "ok", "--size", "30"], "multiple of 4"),
    (["--name", "ok", "--size", "4"], "multiple of 4 from 8 to 256"),
    (["--name", "ok", "--test-fraction", "1"], "between 0 and 1"),
])
def test_bad_arguments_are_refused(tmp_path, cache, capsys, args, message):
    src = tmp_path / "src"
    for i in range(3):
        solid(src / f"{i}.png", (i, i, i))
    rc, out, err = _cli(capsys, src, *args)
    assert rc == 2 and message in err and err.count("\n") == 1 and leftovers(cache) == []


def test_corrupt_and_oversized_files_are_skipped_and_counted(tmp_path, cache, capsys, monkeypatch):
    src = tmp_path / "src"
    for i in range(4):
        noise(src / f"good{i}.png", seed=i)
    good = (src / "good0.png").read_bytes()
    (src / "truncated.png").write_bytes(good[:len(good) // 2])
    (src / "empty.jpg").write_bytes(b"")
    (src / "readme.txt").write_text("hi")
    solid(src / "huge.png", (0, 0, 0), (40, 40))
    monkeypatch.setattr(data, "MAX_PIXELS", 1000)  # 40x40 is over it; 12x10 is not
    rc, out, err = _cli(capsys, src, "--name", "mixed", "--size", "8")
    assert rc == 0, err
    info = json.loads((cache / "mixed" / "dataset.json").read_text())
    assert info["counts"]["images"] == 4 and info["skipped_count"] == 4
    assert info["skipped_kinds"] == {"not an image": 2, "corrupt": 1, "too large": 1}
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["truncated.png"].startswith("corrupt: ") and reasons["huge.png"].startswith("too large: 40x40")
    assert "skipped 4 file(s): " in out and "1 corrupt" in out


def test_pil_decompression_bomb_guard_is_kept(tmp_path, monkeypatch):
    solid(tmp_path / "bomb.png", (0, 0, 0), (40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL raises above twice this
    with pytest.raises(folders.Unreadable, match="decompression-bomb guard"):
        folders.read_image(tmp_path / "bomb.png", 8, 3, max_pixels=10 ** 6)


@pytest.mark.parametrize("where", ["while reading", "after reading", "Ctrl-C"])
def test_a_failed_build_leaves_nothing_and_keeps_the_old_dataset(tmp_path, cache, monkeypatch, where):
    src = tmp_path / "src"
    for i in range(6):
        noise(src / f"{i}.png", seed=i)
    folders.build(src, "kept", size=8, progress=False)
    before = data.load("kept", "train").images.clone()
    (cache / ".kept.tmp-999999999-1").mkdir()  # an orphan of a killed build (no such process): removed
    real, calls = folders.read_image, []

    def failing(*args, **kwargs):
        calls.append(1)
        if where != "after reading" and len(calls) % 6 == 3:  # the third file of each build
            raise KeyboardInterrupt if where == "Ctrl-C" else OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(folders, "read_image", failing)
    if where == "after reading":
        monkeypatch.setattr(folders, "split_indices", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises((KeyboardInterrupt, OSError, RuntimeError)):
        folders.build(src, "kept", size=16, replace=True, progress=False)
    with pytest.raises((KeyboardInterrupt, OSError, RuntimeError)):
        folders.build(src, "new-one", size=16, progress=False)
    assert leftovers(cache) == ["kept"]
    assert (data.load("kept", "train").images == before).all() and before.shape[1:] == (8, 8, 3)


def test_replace_rebuilds_and_a_new_seed_reshuffles(tmp_path, cache):
    src = tmp_path / "src"
    for i in range(20):
        noise(src / f"{i:02d}.png", seed=i)
    folders.build(src, "again", size=8, progress=False)
    first = data.load("again", "test").images.clone()
    with pytest.raises(folders.FolderDatasetError, match="already exists"):
        folders.build(src, "again", size=8, progress=False)
    folders.build(src, "again", size=8, replace=True, progress=False)
    assert (data.load("again", "test").images == first).all()  # the same folder and seed: the same dataset
    folders.build(src, "again", size=8, seed=1, replace=True, progress=False)
    assert not (data.load("again", "test").images == first).all()
    assert leftovers(cache) == ["again"]


# ------------------------------------------------------------------ registration
def test_registration_scans_the_cache_and_survives_damage(tmp_path, cache):
    src = tmp_path / "src"
    for i in range(4):
        noise(src / "a" / f"{i}.png", seed=i)
        noise(src / "b" / f"{i}.png", seed=10 + i)
    folders.build(src, "good", size=8, progress=False)
    folders.build(src, "broken", size=8, progress=False)
    (cache / "broken" / "dataset.json").write_text("{ not json")
    shadow = cache / "mnist"  # made by hand: would shadow a built-in dataset
    shadow.mkdir()
    (shadow / "dataset.json").write_text((cache / "good" / "dataset.json").read_text().replace('"good"', '"mnist"'))
    (cache / "Not_A_Name").mkdir()  # ignored silently, as is anything hidden

    datasets.unregister("good")
    with pytest.warns(UserWarning) as caught:
        assert folders.register_all() == ["good"]
    text = " ".join(str(w.message) for w in caught)
    assert "broken: dataset.json unreadable" in text and "built-in dataset" in text
    assert "good" in datasets.names() and "broken" not in datasets.names()
    assert datasets.get("mnist").shape == (1, 28, 28)  # the built-in entry untouched
    spec = datasets.get("good")
    assert spec.shape == (3, 8, 8) and spec.classes == ["a", "b"] and spec.upload == "picture"
    assert spec.epoch_scale == 20  # 6 training images: the most passes allowed

    # a fresh process finds it by itself: the training CLI's --dataset choices come from the registry
    env = {**os.environ, "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"], "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c",
                          "from explorer import data; print(data.NAMES); print(data.load('good', 'test').images.shape)"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'good'" in out.stdout and "'broken'" not in out.stdout and "torch.Size([2, 8, 8, 3])" in out.stdout

    folders.register_all(tmp_path / "elsewhere")  # its folder gone: unregistered
    assert "good" not in datasets.names()


# ------------------------------------------------------------------ training on it
@pytest.mark.slow
def test_a_preset_trains_on_a_folder_dataset(tmp_path, cache):
    import torch

    from explorer import checkpoints, training

    src = tmp_path / "src"
    for i in range(40):
        noise(src / ("x" if i % 2 else "y") / f"{i}.png", size=(20, 16), seed=i)
    folders.build(src, "tiny-own", size=16, channels=3, progress=False)
    out = tmp_path / "ckpt"
    training.train("vae-16", "tiny-own", epochs=1, out=out, limit=64, evaluate=False, progress=False,
                   config={"channels": 8, "hidden": 32})
    zoo = checkpoints.Zoo(out)
    assert zoo.available() == ["tiny-own/vae-16"]
    model = zoo.load("tiny-own/vae-16", device="cpu")
    x = data.load("tiny-own", "test").floats()
    with torch.no_grad():
        assert model.reconstruct(x).shape == x.shape == (4, 3, 16, 16)


@pytest.mark.slow
def test_a_one_class_folder_is_evaluated_without_a_linear_probe(tmp_path, cache):
    from explorer import training

    src = tmp_path / "src"
    for i in range(30):
        noise(src / f"{i}.png", seed=i)
    folders.build(src, "one-class", size=8, channels=1, progress=False)
    directory = training.train("ae-16", "one-class", epochs=1, out=tmp_path / "ckpt", progress=False,
                               config={"channels": 4, "hidden": 16})
    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics["test_images"] == 3 and "test_mse" in metrics and "linear_probe" not in metrics


# ------------------------------------------------------------------ many files
def test_two_thousand_files(tmp_path, cache):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for c in range(4):
        (src / f"c{c}").mkdir(parents=True)
        for i in range(500):
            Image.fromarray(rng.integers(0, 256, (4, 5), dtype=np.uint8)).save(src / f"c{c}" / f"{i}.png")
    info = folders.build(src, "many", size=8, channels=1, progress=False)
    assert info["counts"]["per_class"] == {f"c{c}": [450, 50] for c in range(4)}
    ds = data.load("many", "train")
    assert ds.images.shape == (1800, 8, 8) and np.bincount(ds.labels.numpy()).tolist() == [450] * 4
