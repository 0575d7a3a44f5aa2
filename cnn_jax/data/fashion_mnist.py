"""TFDS `fashion_mnist`, built from TFDS's own download or from local raw files.

Offline machines (like the project's CI) get the real Fashion-MNIST files from the Debian
package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist). Debian recompressed
the .gz files, so TFDS's recorded checksums fail on them; instead of skipping checksums
globally, we hand TFDS's own builder the decompressed local files and let it write the
standard `fashion_mnist` dataset into `data_dir`. Every later run reads that dataset.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import tempfile

from cnn_jax.data.errors import DataError

FILES = {
    "train_data": ("train-images-idx3-ubyte.gz", 2051, 60_000),
    "train_labels": ("train-labels-idx1-ubyte.gz", 2049, 60_000),
    "test_data": ("t10k-images-idx3-ubyte.gz", 2051, 10_000),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", 2049, 10_000),
}
HOW_TO_GET = ("install the Debian package with `apt-get install dataset-fashion-mnist`, "
              "set --config.source_dir to a folder holding the four *-ubyte.gz files, or "
              "run once with network access so TFDS can download them")


def _local_builder_class():
  import tensorflow_datasets as tfds
  from tensorflow_datasets.image_classification import mnist

  class LocalFashionMNIST(mnist.FashionMNIST, skip_registration=True):
    """TFDS's FashionMNIST builder reading already-decompressed local files."""
    name = "fashion_mnist"
    local_files: dict[str, str] = {}

    def _split_generators(self, dl_manager):
      del dl_manager  # nothing to download
      files = self.local_files
      return [
          tfds.core.SplitGenerator(name=split, gen_kwargs=dict(
              num_examples=FILES[f"{prefix}_data"][2],
              data_path=files[f"{prefix}_data"], label_path=files[f"{prefix}_labels"]))
          for split, prefix in ((tfds.Split.TRAIN, "train"), (tfds.Split.TEST, "test"))
      ]

  return LocalFashionMNIST


def _decompress_checked(source_dir: str, out_dir: str) -> dict[str, str]:
  """Decompresses the four files, checking the IDX magic numbers and example counts."""
  paths = {}
  for key, (filename, magic, count) in FILES.items():
    src = os.path.join(source_dir, filename)
    dst = os.path.join(out_dir, filename[:-3])
    try:
      with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
      with open(dst, "rb") as f:
        got_magic, got_count = struct.unpack(">II", f.read(8))
    except (OSError, EOFError, struct.error) as e:
      raise DataError(f"fashion_mnist: cannot read {src} ({e}); {HOW_TO_GET}") from None
    if (got_magic, got_count) != (magic, count):
      raise DataError(f"fashion_mnist: {src} is not a Fashion-MNIST IDX file "
                      f"(magic {got_magic}, {got_count} items); {HOW_TO_GET}")
    paths[key] = dst
  return paths


def _has_local_files(source_dir: str | None) -> bool:
  return bool(source_dir) and all(
      os.path.exists(os.path.join(source_dir, f)) for f, _, _ in FILES.values())


def mnist_url() -> str:
  from tensorflow_datasets.image_classification import mnist
  return mnist.FashionMNIST.URL


def _reachable(url: str, timeout: float = 5.0) -> tuple[bool, str]:
  """A quick TCP check, so an offline machine fails in seconds, not after TFDS's retries."""
  import socket
  import urllib.parse
  parsed = urllib.parse.urlparse(url)
  try:
    socket.create_connection((parsed.hostname, parsed.port or 80), timeout=timeout).close()
  except OSError as e:
    return False, f"{parsed.hostname}: {e.strerror or e}"
  return True, ""


def builder(data_dir: str | None, source_dir: str | None):
  """Returns a prepared `fashion_mnist` TFDS builder, preparing it once if needed."""
  import tensorflow_datasets as tfds

  plain = tfds.builder("fashion_mnist", data_dir=data_dir)
  if plain.is_prepared():
    return plain
  if _has_local_files(source_dir):
    cls = _local_builder_class()
    local = cls(data_dir=data_dir)
    with tempfile.TemporaryDirectory() as tmp:
      cls.local_files = _decompress_checked(source_dir, tmp)
      local.download_and_prepare()
    return tfds.builder("fashion_mnist", data_dir=data_dir)
  reachable, why = _reachable(mnist_url())
  if not reachable:
    raise DataError(f"fashion_mnist: no prepared dataset in {plain.data_dir}, no raw files "
                    f"in {source_dir!r}, and no network to download them ({why}); "
                    f"{HOW_TO_GET}")
  try:
    plain.download_and_prepare()
  except Exception as e:  # noqa: BLE001 — any download failure gets the same advice
    first_line = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    raise DataError(f"fashion_mnist: no prepared dataset in {plain.data_dir}, no raw files "
                    f"in {source_dir!r}, and the download failed ({first_line}); "
                    f"{HOW_TO_GET}") from None
  return plain
