"""Users' own images: one subfolder per class, written once into a TFDS dataset.

  <source_dir>/train/<class_name>/*.jpg|png|...
  <source_dir>/validation/<class_name>/...      (or val/ or test/)

  python -m cnn_jax.main --config=... --config.dataset=image_folder \
      --config.source_dir=/path/to/folder --config.augment=inception

Every file is opened and fully decoded while preparing; an undecodable or truncated image
(or a non-image file) is skipped and counted, never a crash, and the skipped paths are
listed in `skipped.json` beside the dataset. Images that are not RGB/grayscale JPEGs
(PNG, CMYK JPEG, ...) are re-encoded as JPEG (quality 95), so the training pipeline can
decode and crop in one step like ImageNet's.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os

from cnn_jax.data.errors import DataError

EVAL_SPLIT_NAMES = ("validation", "val", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _layout(source_dir: str) -> tuple[str, str]:
  train = os.path.join(source_dir, "train")
  evals = [os.path.join(source_dir, n) for n in EVAL_SPLIT_NAMES
           if os.path.isdir(os.path.join(source_dir, n))]
  if not os.path.isdir(train) or not evals:
    raise DataError(f"image_folder: {source_dir!r} needs train/<class>/ and "
                    f"validation/<class>/ (or val/, test/) subfolders of images; set "
                    f"--config.source_dir to such a folder")
  return train, evals[0]


def classes(source_dir: str) -> list[str]:
  train, _ = _layout(source_dir)
  names = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
  if not names:
    raise DataError(f"image_folder: no class subfolders in {train}")
  return names


def read_jpeg(path: str) -> bytes | None:
  """The file as RGB/grayscale JPEG bytes, or None when it is not a whole, decodable image."""
  from PIL import Image
  try:
    with open(path, "rb") as f:
      data = f.read()
    with Image.open(io.BytesIO(data)) as img:
      img.load()  # a full decode: raises on truncated or corrupt data
      if img.format == "JPEG" and img.mode in ("RGB", "L"):
        return data
      buf = io.BytesIO()
      img.convert("RGB").save(buf, format="JPEG", quality=95)
      return buf.getvalue()
  except Exception:  # noqa: BLE001 — PIL raises many types for bad files; all mean "skip"
    return None


def _files(split_dir: str, class_names: list[str]):
  for label, name in enumerate(class_names):
    folder = os.path.join(split_dir, name)
    if not os.path.isdir(folder):
      continue
    for fname in sorted(os.listdir(folder)):
      path = os.path.join(folder, fname)
      if os.path.isfile(path) and not fname.startswith("."):
        yield path, label


def check_decodable(source_dir: str, class_names: list[str]) -> None:
  """Raises DataError, before anything is written, when a split holds no decodable image.

  Decodes each split's files only until the first good one, so a folder of good images
  costs one decode per split; single bad files are skipped later while preparing."""
  for split_dir in _layout(source_dir):
    files = 0
    for path, _ in _files(split_dir, class_names):
      files += 1
      if read_jpeg(path) is not None:
        break
    else:
      what = (f"none of its {files} files is a decodable image" if files
              else "it holds no files")
      raise DataError(f"image_folder: {split_dir}: {what}; put JPEG/PNG images in its "
                      f"class subfolders (or set --config.source_dir to another folder)")


def _builder_class():
  import tensorflow_datasets as tfds

  class ImageFolder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A class-per-subfolder image dataset, bad files skipped."""
    name = "image_folder"
    VERSION = tfds.core.Version("1.0.0")
    source_dir: str = ""
    class_names: list[str] = []
    skipped: list[str] = []

    def _info(self):
      return self.dataset_info_from_configs(
          description=f"Images from {self.source_dir}",
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Image(encoding_format="jpeg"),
              "label": tfds.features.ClassLabel(names=self.class_names),
              "file_name": tfds.features.Text(),
          }),
          supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
      del dl_manager
      train, evaluation = _layout(self.source_dir)
      return {"train": self._generate_examples(train),
              "validation": self._generate_examples(evaluation)}

    def _generate_examples(self, split_dir):
      for path, label in _files(split_dir, self.class_names):
        data = read_jpeg(path)
        if data is None:
          type(self).skipped.append(path)
          continue
        rel = os.path.relpath(path, self.source_dir)
        yield rel, {"image": data, "label": label, "file_name": rel}

  return ImageFolder


def _dataset_dir(data_dir: str | None, source_dir: str) -> str:
  """One TFDS data_dir per source folder, so two folders never share a dataset."""
  import tensorflow_datasets as tfds
  root = os.path.expanduser(data_dir or tfds.core.constants.DATA_DIR)
  source = os.path.abspath(source_dir)
  slug = os.path.basename(source.rstrip("/")) or "root"
  digest = hashlib.sha1(source.encode()).hexdigest()[:8]
  return os.path.join(root, "image_folder", f"{slug}-{digest}")


def builder(data_dir: str | None, source_dir: str | None):
  """The prepared builder for `source_dir`, preparing it once (skipping bad images)."""
  if not source_dir or not os.path.isdir(source_dir):
    raise DataError(f"image_folder: source folder {source_dir!r} not found; set "
                    f"--config.source_dir to a folder with train/<class>/ and "
                    f"validation/<class>/ subfolders")
  class_names = classes(source_dir)
  cls = _builder_class()
  cls.source_dir, cls.class_names, cls.skipped = source_dir, class_names, []
  b = cls(data_dir=_dataset_dir(data_dir, source_dir))
  if not b.is_prepared():
    check_decodable(source_dir, class_names)
    b.download_and_prepare()
    with open(os.path.join(b.data_dir, "skipped.json"), "w") as f:
      json.dump(sorted(cls.skipped), f, indent=1)
    logging.info("image_folder: %d images skipped (undecodable or truncated), listed in %s",
                 len(cls.skipped), os.path.join(b.data_dir, "skipped.json"))
  return b


def skipped(b) -> list[str]:
  """The files skipped while preparing `b`."""
  path = os.path.join(b.data_dir, "skipped.json")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)
