"""Decoded images on disk, written once and read by index: how a dataset larger than memory is streamed.

A cache is one file: a 4 KiB JSON header, then N fixed-size uint8 records [R, R, 3], then N int32 labels.
It is written to a temporary name and renamed, so a reader sees a whole cache or none. On reuse the
header must match the settings (source, size, crop), the contents' checksum (e.g. of the file list) and
the file's length; otherwise the cache is rebuilt, with one line saying why.
"""

import hashlib
import json
import os
import re
import shutil
import sys

import numpy as np

from pgn_tf.data import source as _source
from pgn_tf.data.source import ArraySource, SourceInfo
from pgn_tf.errors import DataError

VERSION = 1
MAGIC = b"pgn_tf image cache\n"
HEADER = 4096


class DiskSource:
    """Records read from a cache file by index (one pread each): memory use does not grow with the dataset.

    Args:
      path: the cache file.
      count: N.
      record_shape: (R, R, 3).
      labels: int32 [N] (read from the file's end, held in memory).
      info: SourceInfo (its `where` is path).
    """

    def __init__(self, path, count, record_shape, labels, info):
        self.path, self.count, self.record_shape, self.labels = path, count, tuple(record_shape), labels
        self.info = info
        self.record_bytes = int(np.prod(self.record_shape))
        self._fd = os.open(path, os.O_RDONLY)

    def __len__(self):
        return self.count

    def read(self, indices):
        """indices: int [k] -> (uint8 [k, R, R, 3], int32 [k]); read in file order, returned in the asked order."""
        out = np.empty((len(indices), self.record_bytes), np.uint8)
        for j in np.argsort(indices, kind="stable"):
            got = os.preadv(self._fd, [out[j]], HEADER + int(indices[j]) * self.record_bytes)
            if got != self.record_bytes:
                raise DataError(f"the image cache {self.path} was truncated while in use; delete it and run again.")
        return out.reshape((len(indices), *self.record_shape)), self.labels[indices]

    def valid(self):
        """Whether the cache file is still the one opened, whole (not replaced, truncated or removed)."""
        try:
            now, opened = os.stat(self.path), os.fstat(self._fd)
        except OSError:
            return False
        return now.st_ino == opened.st_ino and now.st_size == HEADER + self.count * (self.record_bytes + 4)

    def __del__(self, close=os.close):  # os may be gone at interpreter exit
        if getattr(self, "_fd", None) is not None:
            close(self._fd)


def materialize(identity, checksum, record_shape, batches, count, info, label, in_memory, cache_dir):
    """A source's records in memory or in its disk cache, as in_memory says; one live copy per process.

    Args:
      identity, checksum, record_shape, batches, count, info, label: as for open_or_build.
      in_memory: "auto" (in memory up to source.MEMORY_BUDGET decoded bytes, else streamed), True or False.
      cache_dir: the folder of the cache file.

    Returns:
      ArraySource or DiskSource, with `extra` (what batches stored, e.g. skipped files) as an attribute.
    """

    def make():
        if _source.use_memory(in_memory, count * int(np.prod(record_shape)) if count else None):
            extra = {}
            images, labels = _source.collect(batches(extra), count, record_shape)
            source = ArraySource(images, labels, info)
        else:
            source, extra = open_or_build(
                os.path.join(cache_dir, file_name(identity)), identity, checksum, record_shape, batches, count, info,
                label,
            )  # fmt: skip
        source.extra = extra
        return source

    return _source.shared([identity, repr(in_memory)], checksum, make)


def file_name(identity):
    """A readable cache name for a source's settings: <what>.<size>.<crop>.<hash>.pgncache."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", identity["what"]).strip("_")[-60:]
    return f"{slug}.{identity['size']}.{identity['crop']}.{digest}.pgncache"


def open_or_build(path, identity, checksum, record_shape, batches, count, info, label):
    """The cache at path as a DiskSource, built first when it is missing, damaged or from other settings.

    Args:
      path: the cache file.
      identity: JSON-able settings (source, size, crop, ...).
      checksum: a string naming the contents (e.g. a hash of the file list with sizes and times).
      record_shape: (R, R, 3).
      batches: (extra) -> iterator of (uint8 [k, R, R, 3], int [k]) in index order; it may fill the dict
        extra, which is stored in the header (e.g. the files skipped).
      count: N if known (to check the disk space first), else None.
      info: the SourceInfo (its `where` is set to path).
      label: names the source in the lines printed ("data.image_folder").

    Returns:
      (DiskSource, extra): extra is the dict stored with the cache (e.g. skipped files).
    """
    meta, why = _read_header(path, identity, checksum, record_shape)
    if meta is None:
        if why:
            print(f"{label}: the image cache {path} {why}; rebuilding it.", file=sys.stderr, flush=True)
        meta = _build(path, identity, checksum, record_shape, batches, count, label)
    labels = np.fromfile(path, "<i4", count=meta["count"], offset=HEADER + meta["count"] * int(np.prod(record_shape)))
    source = DiskSource(path, meta["count"], record_shape, labels.astype(np.int32), _with_where(info, path))
    return source, meta["extra"]


def _with_where(info, path):
    return SourceInfo(info.name, info.size, info.num_classes, info.class_names, where=path)


def _amount(num_bytes):
    return f"{num_bytes / 1e9:.1f} GB" if num_bytes >= 1e9 else f"{num_bytes / 1e6:.1f} MB"


def _read_header(path, identity, checksum, record_shape):
    """(meta, None) for a usable cache; (None, why) for one to rebuild; (None, None) when there is none."""
    if not os.path.exists(path):
        return None, None
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER)
        if not head.startswith(MAGIC):
            return None, "is not a pgn_tf cache"
        meta = json.loads(head[len(MAGIC) :].decode())
    except (OSError, ValueError):
        return None, "has an unreadable header"
    if meta.get("version") != VERSION or meta.get("identity") != identity:
        return None, "was made with other settings"
    if meta.get("checksum") != checksum:
        return None, "was made from other data (files added, removed or changed)"
    if tuple(meta.get("record_shape", ())) != tuple(record_shape):
        return None, "holds records of another shape"
    want = HEADER + meta["count"] * (int(np.prod(record_shape)) + 4)
    if os.path.getsize(path) != want:
        return None, f"is truncated ({os.path.getsize(path):,} bytes, {want:,} expected)"
    return meta, None


def _build(path, identity, checksum, record_shape, batches, count, label):
    folder = os.path.dirname(path) or "."
    record_bytes = int(np.prod(record_shape))
    try:
        os.makedirs(folder, exist_ok=True)
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise DataError(
            f"cannot write the image cache in {folder} ({e.strerror}); set {label}.cache_dir to a writable folder."
        ) from None
    if count and free < count * (record_bytes + 4) + (1 << 30):
        raise DataError(
            f"the image cache needs {_amount(count * record_bytes)} in {folder}, which has {_amount(free)} free; "
            f"set {label}.cache_dir to a folder with room."
        )
    size = f" ({_amount(count * record_bytes)})" if count else ""
    print(f"{label}: decoding into the image cache {path}{size}, once.", file=sys.stderr, flush=True)
    tmp, extra, n, labels = f"{path}.tmp.{os.getpid()}", {}, 0, []
    try:
        with open(tmp, "wb") as f:
            f.write(b"\0" * HEADER)
            for x, y in batches(extra):
                f.write(np.ascontiguousarray(x, np.uint8).tobytes())
                labels.append(np.asarray(y, "<i4"))
                n += len(x)
            f.write(np.concatenate(labels or [np.zeros(0, "<i4")]).tobytes())
            meta = {"version": VERSION, "identity": identity, "checksum": checksum, "count": n}
            meta.update(record_shape=list(record_shape), extra=extra)
            head = MAGIC + json.dumps(meta, sort_keys=True).encode()
            if len(head) > HEADER:
                raise DataError(f"internal: the cache header of {path} is longer than {HEADER} bytes.")
            f.seek(0)
            f.write(head.ljust(HEADER, b" "))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise DataError(
            f"cannot write the image cache {path} ({e.strerror}); set {label}.cache_dir to a writable folder with room."
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return meta
