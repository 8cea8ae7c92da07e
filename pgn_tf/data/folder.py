"""A folder of the user's own images (JPEG, PNG, BMP, GIF, WebP), optionally labelled by subfolder, as a source."""

import hashlib
import os
import sys

import numpy as np
import tensorflow as tf

from pgn_tf.data import cache, images
from pgn_tf.data.source import SourceInfo, pipeline
from pgn_tf.errors import DataError

SKIPPED_NAMED = 5  # undecodable files named in the line that counts them


def folder_source(path, size, crop="center", labels_from_subfolders=False, in_memory="auto", cache_dir=None):
    """Every decodable image under path, in sorted order of relative path, as a source.

    Args:
      path: the folder, searched recursively (hidden files and folders left out).
      size: the image side S the run trains at.
      crop: "center", "resize" or "random" (`images.fit`).
      labels_from_subfolders: label each image by its first-level subfolder (sorted names -> 0, 1, ...).
      in_memory: "auto", True or False (`cache.materialize`).
      cache_dir: where the decoded cache is written when streamed (default PATH/.pgn_tf_cache).

    Returns:
      ArraySource or cache.DiskSource of uint8 records.

    Raises:
      DataError: no such folder, no image file in it, none that decodes, images outside any class
        subfolder, a bad size or crop, an unwritable cache.
    """
    what = "data.image_folder"
    if not path:
        raise DataError(f'{what}.path is not set; bind it to a folder of images, e.g. {what}.path = "/data/faces".')
    root = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(root):
        raise DataError(f"image folder {path} does not exist; set {what}.path to a folder of images.")
    images.check_size(size, crop, what)
    files = images.list_images(root)
    if not files:
        kinds = ", ".join(images.EXTENSIONS)
        raise DataError(f"no image files ({kinds}) under {path}; set {what}.path to a folder of images.")
    class_names, labels = _labels(files, path, labels_from_subfolders)
    checksum = _checksum(root, files)
    identity = {"what": f"folder-{os.path.basename(root)}", "path": root, "size": size, "crop": crop}
    identity["labels_from_subfolders"] = bool(labels_from_subfolders)
    side = images.record_size(size, crop)
    info = SourceInfo(f"folder:{path}", size, len(class_names) or None, tuple(class_names))

    def batches(extra):
        paths = [os.path.join(root, f) for f in files]
        ds = tf.data.Dataset.from_tensor_slices((np.arange(len(files)), paths, labels))
        ds = ds.map(
            lambda i, p, y: (i, images.fit(images.decode_file(p), size, crop), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        # A file that does not decode is dropped here; the indices that arrive say which.
        ds = ds.ignore_errors(log_warning=False).batch(256).prefetch(2)
        decoded = np.zeros(len(files), bool)
        for i, x, y in ds.as_numpy_iterator():
            decoded[i] = True
            yield x, y
        bad = [files[k] for k in np.flatnonzero(~decoded)]
        if len(bad) == len(files):
            raise DataError(f"none of the {len(files)} image files under {path} decodes (first: {', '.join(bad[:3])}).")
        extra.update(skipped=len(bad), skipped_first=bad[:SKIPPED_NAMED])

    source = cache.materialize(
        identity, checksum, (side, side, 3), batches, len(files), info, what, in_memory,
        cache_dir or os.path.join(root, ".pgn_tf_cache"),
    )  # fmt: skip
    _report_skipped(source, len(files), path)
    return source


def image_folder(
    batch_size,
    seed=0,
    start_step=0,
    path=None,
    size=None,
    crop="center",
    labels_from_subfolders=False,
    random_flip=True,
    in_memory="auto",
    cache_dir=None,
):
    """Your own images: every decodable image under path (see `folder_source` for the arguments).

    Undecodable files are skipped with one line that counts them and names the first ones. For a
    conditional model, labels_from_subfolders = True and train_and_evaluate.num_classes = the number of
    first-level subfolders (checked: `data.check_num_classes`).

    Returns:
      tf.data of (images float32 [batch_size, size, size, 3] in [-1, 1], labels int32 [batch_size]).
    """
    source = folder_source(path, size, crop, labels_from_subfolders, in_memory, cache_dir)
    return pipeline(source, batch_size, seed, start_step, random_flip)


def _labels(files, path, labels_from_subfolders):
    """(class names, int32 labels [N]): sorted first-level subfolders, or ((), zeros)."""
    if not labels_from_subfolders:
        return (), np.zeros(len(files), np.int32)
    loose = [f for f in files if os.sep not in f]
    if loose:
        raise DataError(
            f"{len(loose)} images lie directly in {path}, outside any class subfolder (first: {loose[0]}); "
            "move them into a subfolder or set data.image_folder.labels_from_subfolders = False."
        )
    top = [f.split(os.sep, 1)[0] for f in files]
    names = sorted(set(top))
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[t] for t in top], np.int32)


def _checksum(root, files):
    """sha256 of the file list with each file's size and modification time: changes when the data does."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(os.path.join(root, f))
        h.update(f"{f}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _report_skipped(source, total, path):
    skipped = source.extra.get("skipped", 0)
    if skipped and not getattr(source, "reported", False):
        first = ", ".join(source.extra["skipped_first"]) + (", ..." if skipped > SKIPPED_NAMED else "")
        print(
            f"data.image_folder: skipped {skipped} of {total} image files under {path} that do not decode: {first}",
            file=sys.stderr,
            flush=True,
        )
        source.reported = True
