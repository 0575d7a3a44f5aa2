"""Prepares a dataset once, before training:

  python -m cnn_jax.data.prepare --dataset=imagenet2012 \
      --data_dir=~/tensorflow_datasets --manual_dir=/path/to/tars

ImageNet: the manual dir holds ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from
https://image-net.org/download-images); without --manual_dir TFDS's default
<data_dir>/downloads/manual is used. The extra evaluation sets (imagenet_v2,
imagenet2012_real, imagenet_a, imagenet_r) download their authors' archives; offline, put
those files in the manual dir under TFDS's names (imagenetv2-matched-frequency.tar.gz,
real.json, imagenet-a.tar, imagenet-r.tar; cnn_jax.data.imagenet.ARCHIVES) and TFDS uses
them after checking their checksums. imagenet2012_real also reads ILSVRC2012_img_val.tar.
Also `--dataset=image_folder --source_dir=DIR` and `--dataset=fashion_mnist`.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from cnn_jax import flag_parsing

_DATASET = flags.DEFINE_string("dataset", "imagenet2012", "Dataset name (cnn_jax.data).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir; default TFDS's.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None,
                                  "Folder of the ImageNet tars (and, offline, the extra "
                                  "evaluation sets' archives); default "
                                  "<data_dir>/downloads/manual.")
_SOURCE_DIR = flags.DEFINE_string("source_dir", None,
                                  "Raw files: image_folder root, or Fashion-MNIST's .gz.")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  import ml_collections

  from cnn_jax import data
  from cnn_jax.data.errors import DataError

  config = ml_collections.ConfigDict({
      "dataset": _DATASET.value, "data_dir": _DATA_DIR.value, "manual_dir": _MANUAL_DIR.value,
      "source_dir": _SOURCE_DIR.value or "/usr/share/datasets/fashion-mnist",
      "augment": "none"})
  try:
    ds_info = data.info(config.dataset)
    b = data.dataset_builder(ds_info.name, config)  # eval-only sets too
  except (ValueError, DataError) as e:
    sys.exit(f"error: {e}")
  splits = ", ".join(f"{k}: {v.num_examples:,}" for k, v in sorted(b.info.splits.items()))
  logging.info("%s ready in %s (%s)", ds_info.name, b.data_dir, splits)
  print(f"{ds_info.name} ready in {b.data_dir} ({splits})")


if __name__ == "__main__":
  flag_parsing.run(main)
