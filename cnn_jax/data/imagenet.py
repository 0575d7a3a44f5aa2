"""ImageNet through TFDS: `imagenet2012` from its manual dir, the extra evaluation sets,
and the per-example preprocessing of encoded JPEGs for training and evaluation.

Prepare once (hours on the real 150 GB of tars; TFDS writes ~155 GB of records):

  python -m cnn_jax.data.prepare --dataset=imagenet2012 \
      --data_dir=~/tensorflow_datasets --manual_dir=/path/to/tars

where /path/to/tars holds ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from
https://image-net.org/download-images (registration required). Without --manual_dir TFDS's
default `<data_dir>/downloads/manual` is used. Training with --config.dataset=imagenet2012
also prepares it on first use when the tars are in place.

Extra evaluation sets (`imagenet_v2`, `imagenet2012_real`, `imagenet_a`, `imagenet_r`) are
prepared the same way, e.g. `--dataset=imagenet_a`. TFDS downloads their authors' archives
(ARCHIVES below), or, when a file of that name is in the manual dir, uses it instead, after
checking its size and sha256 against those TFDS registers; so on an offline machine put
imagenetv2-matched-frequency.tar.gz, real.json, imagenet-a.tar and imagenet-r.tar next to
the ImageNet tars (imagenet2012_real also reads ILSVRC2012_img_val.tar there).
"""

from __future__ import annotations

import logging
import os

from cnn_jax.data.errors import DataError
from cnn_jax.data.pipeline import traced_as_written

TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
PREPARE_COMMAND = "python -m cnn_jax.data.prepare --dataset={name} --data_dir={data_dir}{manual}"
# The authors' archive of each extra evaluation set, under the file name TFDS's
# checksums.tsv gives its URL: TFDS takes a file of that name from the manual dir instead of
# downloading it (imagenet_v2: its default config, matched-frequency).
ARCHIVES = {
    "imagenet_v2": "imagenetv2-matched-frequency.tar.gz",
    "imagenet2012_real": "real.json",
    "imagenet_a": "imagenet-a.tar",
    "imagenet_r": "imagenet-r.tar",
}


def _data_dir_root(data_dir: str | None) -> str:
  if data_dir:
    return os.path.expanduser(data_dir)
  import tensorflow_datasets as tfds
  return os.path.expanduser(tfds.core.constants.DATA_DIR)


def default_manual_dir(data_dir: str | None) -> str:
  """TFDS's default: <data_dir>/downloads/manual."""
  return os.path.join(_data_dir_root(data_dir), "downloads", "manual")


def _command(name: str, data_dir: str | None, manual_dir: str | None) -> str:
  return PREPARE_COMMAND.format(name=name, data_dir=_data_dir_root(data_dir),
                                manual=f" --manual_dir={manual_dir}" if manual_dir else "")


def _sources(name: str, manual: str) -> str:
  """Where preparing an extra evaluation set reads its files from."""
  also = f"; it also reads {TARS[1]} from {manual}" if name == "imagenet2012_real" else ""
  return (f"it downloads {ARCHIVES[name]} from the authors' site, or, offline, uses "
          f"{os.path.join(manual, ARCHIVES[name])} if you put the file there{also}")


def builder(name: str, data_dir: str | None, manual_dir: str | None = None, *,
            build: bool = True):
  """The prepared TFDS builder of `name`; builds it once (if `build`) or says how."""
  import tensorflow_datasets as tfds

  b = tfds.builder(name, data_dir=_data_dir_root(data_dir))
  if b.is_prepared():
    return b
  manual = os.path.expanduser(manual_dir) if manual_dir else default_manual_dir(data_dir)
  if name == "imagenet2012":
    missing = [t for t in TARS if not os.path.exists(os.path.join(manual, t))]
    if missing:
      raise DataError(
          f"imagenet2012: not prepared in {b.data_dir} and {' and '.join(missing)} missing "
          f"from {manual}; download {TARS[0]} and {TARS[1]} from "
          f"https://image-net.org/download-images into {manual} (or point "
          f"--config.manual_dir at them), then run `{_command(name, data_dir, manual_dir)}`")
  sources = f" ({_sources(name, manual)})" if name in ARCHIVES else ""
  if not build:
    raise DataError(f"{name}: not prepared in {b.data_dir}; run "
                    f"`{_command(name, data_dir, manual_dir)}`{sources}")
  logging.info("preparing %s into %s (manual dir %s); this runs once", name, b.data_dir, manual)
  try:
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
  except Exception as e:  # noqa: BLE001 — any failure gets the same one-line advice
    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    archive = os.path.join(manual, ARCHIVES[name]) if name in ARCHIVES else ""
    if archive and os.path.isfile(archive):
      sources = ""  # it was used
      if type(e).__name__ == "NonMatchingChecksumError":
        # TFDS's first line (URL, path) can pass 200 characters before saying what is wrong.
        first = (f"{archive} is not the authors' file: its size or sha256 differs from "
                 f"those TFDS registers (an incomplete copy?)")
    raise DataError(f"{name}: preparing into {b.data_dir} failed ({first}); check the files "
                    f"in {manual} and rerun `{_command(name, data_dir, manual_dir)}`"
                    f"{sources}") from None
  return tfds.builder(name, data_dir=_data_dir_root(data_dir))


def skip_decoding():
  """TFDS decoders that hand the pipeline the encoded JPEG (decoded later, cropped)."""
  import tensorflow_datasets as tfds
  return {"image": tfds.decode.SkipDecoding()}


def class_subset(b, split: str, label_key: str = "label") -> list[int]:
  """The classes present in a split (ImageNet-A / -R hold 200 of the 1000), read from the
  labels alone."""
  import numpy as np
  import tensorflow_datasets as tfds
  ds = b.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  labels = ds.map(traced_as_written(lambda ex: ex[label_key])).batch(4096)
  return sorted({int(x) for batch in labels.as_numpy_iterator() for x in np.asarray(batch)})


def train_preprocess(augmentation, *, size: int, mean, std, method: str,
                     crop_fraction: float, augment_kwargs=None):
  """(example with encoded 'image', rng_seed) -> {'image' normalised, 'label'}.

  `augmentation` is an EncodedAugmentation, or a per-image one (`none`, `flip_crop`)
  applied to the evaluation centre crop.
  """
  import tensorflow as tf

  from cnn_jax.data import augment
  from cnn_jax.data import imagenet_preprocess as ip
  from cnn_jax.data.pipeline import normalize
  kwargs = dict(augment_kwargs or {})

  def preprocess(example, rng_seed):
    if isinstance(augmentation, augment.EncodedAugmentation):
      # Normalised by the augmentation's last pass (fused with its clip where it can).
      image = augmentation(example["image"], rng_seed, size, method=method,
                           crop_fraction=crop_fraction, normalize=(mean, std), **kwargs)
    else:
      image = ip.decode_and_center_crop(example["image"], size, crop_fraction, method)
      image = normalize(augmentation(image, rng_seed), mean, std)
    return {"image": tf.ensure_shape(image, [size, size, 3]), "label": example["label"]}

  return preprocess


def eval_preprocess(*, protocol: str, size: int, mean, std, method: str,
                    crop_fraction: float, scales=None, label_key: str = "label",
                    num_classes: int = 1000):
  """(example, rng_seed) -> {'image*' views normalised, 'label'[, 'real_labels']}."""
  import tensorflow as tf

  from cnn_jax.data import eval_protocols
  from cnn_jax.data.pipeline import normalize

  def preprocess(example, rng_seed):
    del rng_seed
    views = eval_protocols.views(example["image"], protocol, size, crop_fraction, method,
                                 scales)
    out = {k: normalize(v, mean, std) for k, v in views.items()}
    out["label"] = example[label_key]
    if "real_label" in example:  # ReaL: the set of plausible labels, as a multi-hot
      real = tf.cast(example["real_label"], tf.int32)
      hits = tf.scatter_nd(real[:, None], tf.ones_like(real, tf.float32), [num_classes])
      out["real_labels"] = tf.minimum(hits, 1.0)
    return out

  return preprocess
