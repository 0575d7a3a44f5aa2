"""The extra ImageNet evaluation sets (imagenet_v2, imagenet2012_real, imagenet_a,
imagenet_r): tiny fakes of their authors' archives, in the authors' layouts and under the
file names TFDS looks for in the manual dir (how an offline machine prepares them), are
prepared by TFDS's own builders through `cnn_jax.data.imagenet.builder`, and evaluated
after training through the CLI."""

import contextlib
import json
import logging
import os
import tarfile
from unittest import mock

import numpy as np
import pytest

from tests.test_data_imagenet import (NUM_VAL, _add, jpeg_bytes, make_fake_imagenet, run,
                                      run_tiny_imagenet_training)

EXTRA = ("imagenet_v2", "imagenet2012_real", "imagenet_a", "imagenet_r")
# imagenet_v2: folders named by class number (0..999) -> images in each.
V2_FOLDERS = {"0": 2, "417": 1}
# ImageNet-A / -R: folders named by wnid (classes of both 200-class sets) -> images.
A_WNIDS = {"n01498041": 2, "n01531178": 1, "n01534433": 1}
R_WNIDS = {"n01443537": 1, "n01498041": 2}
# real.json: entry i lists the plausible labels of ILSVRC2012_val_{i+1:08d}.JPEG, some
# none; the real one covers all 50k images, the fake val tar only the first NUM_VAL.
REAL_JSON = [[], [970, 795], [230, 231], [809], [516, 850], [57], [1], [2, 3]]
assert len(REAL_JSON) > NUM_VAL


def make_fake_extras(manual_dir: str) -> None:
  """The four archives, laid out as their authors publish them."""
  from cnn_jax.data import imagenet
  rng = np.random.default_rng(1)
  img = lambda: jpeg_bytes(rng, 40, 50)  # noqa: E731
  with tarfile.open(os.path.join(manual_dir, imagenet.ARCHIVES["imagenet_v2"]), "w:gz") as t:
    top = "imagenetv2-matched-frequency-format-val"  # the builder's _TAR_TOPDIR
    for folder, n in V2_FOLDERS.items():
      for k in range(n):
        _add(t, f"{top}/{folder}/{k:02d}{'ab' * 19}.jpeg", img())
  for name, wnids in (("imagenet_a", A_WNIDS), ("imagenet_r", R_WNIDS)):
    top = name.replace("_", "-")
    with tarfile.open(os.path.join(manual_dir, imagenet.ARCHIVES[name]), "w") as t:
      _add(t, f"{top}/README.txt", b"not a class folder: the builders skip it\n")
      for wnid, n in wnids.items():
        for k in range(n):
          # ImageNet-A's builder keys examples by file name: its names are unique.
          stem = f"{wnid}_{k}" if name == "imagenet_a" else f"art_{k}"
          _add(t, f"{top}/{wnid}/{stem}.jpg", img())
  with open(os.path.join(manual_dir, imagenet.ARCHIVES["imagenet2012_real"]), "w") as f:
    json.dump(REAL_JSON, f)


@contextlib.contextmanager
def fakes_registered(name: str, manual_dir: str):
  """TFDS checks an archive it finds in the manual dir against the size and sha256 that
  its checksums.tsv registers for the URL; the authors' archives pass, these fakes cannot.
  So, test-side only, the builder's registered checksums for those URLs (same file names)
  become the fakes' own: TFDS still finds each archive by name in the manual dir and still
  validates it, against the fake. Nothing in cnn_jax skips the check
  (test_fake_archive_fails_tfds_checksum_in_one_line)."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.download import checksums
  cls = tfds.builder_cls(name)
  registered = dict(cls.url_infos)
  fakes = {url: checksums.compute_url_info(os.path.join(manual_dir, info.filename))
           for url, info in registered.items()
           if info.filename and os.path.isfile(os.path.join(manual_dir, info.filename))}
  assert fakes, f"no archive of {name} in {manual_dir}: {registered}"
  with mock.patch.object(cls, "url_infos", {**registered, **fakes}):
    yield


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """(data_dir, manual_dir, {name: builder}): fake ImageNet and the four sets, prepared."""
  from cnn_jax.data import imagenet
  root = tmp_path_factory.mktemp("extra_evals")
  manual, data_dir = str(root / "manual"), str(root / "tfds")
  make_fake_imagenet(manual)
  make_fake_extras(manual)
  builders = {"imagenet2012": imagenet.builder("imagenet2012", data_dir, manual)}
  for name in EXTRA:
    with fakes_registered(name, manual):
      builders[name] = imagenet.builder(name, data_dir, manual)
    assert builders[name].is_prepared()
  return data_dir, manual, builders


def _examples(b, split):
  import tensorflow_datasets as tfds
  return list(tfds.as_numpy(b.as_dataset(split=split, shuffle_files=False)))


def _label_index(b, wnid):
  return b.info.features["label"].str2int(wnid)


def test_imagenet_v2_labels_are_folder_numbers(prepared):
  _, _, builders = prepared
  b = builders["imagenet_v2"]
  assert b.builder_config.name == "matched-frequency"
  assert b.info.splits["test"].num_examples == sum(V2_FOLDERS.values())
  got = sorted((int(ex["label"]), ex["file_name"].decode().split("/")[0])
               for ex in _examples(b, "test"))
  assert got == sorted((int(f), f) for f, n in V2_FOLDERS.items() for _ in range(n))


@pytest.mark.parametrize("name,wnids", [("imagenet_a", A_WNIDS), ("imagenet_r", R_WNIDS)])
def test_renditions_and_adversarial_map_wnids_to_imagenet_classes(prepared, name, wnids):
  from cnn_jax.data import imagenet
  _, _, builders = prepared
  b, names = builders[name], builders["imagenet2012"].info.features["label"].names
  assert b.info.splits["test"].num_examples == sum(wnids.values())  # README.txt skipped
  labels = sorted(int(ex["label"]) for ex in _examples(b, "test"))
  expected = sorted(names.index(w) for w, n in wnids.items() for _ in range(n))
  assert labels == expected  # the wnid's index among imagenet2012's 1000 classes
  assert [_label_index(b, w) for w in wnids] == [names.index(w) for w in wnids]
  assert imagenet.class_subset(b, "test") == sorted(names.index(w) for w in wnids)


def test_real_labels_follow_real_json_and_original_labels_imagenet(prepared):
  _, _, builders = prepared
  b = builders["imagenet2012_real"]
  assert b.info.splits["validation"].num_examples == NUM_VAL
  val = {ex["file_name"]: int(ex["label"])
         for ex in _examples(builders["imagenet2012"], "validation")}
  examples = _examples(b, "validation")
  assert {ex["file_name"] for ex in examples} == set(val)
  for ex in examples:
    name = ex["file_name"].decode()
    i = int(name[len("ILSVRC2012_val_"):-len(".JPEG")]) - 1
    assert sorted(ex["real_label"].tolist()) == sorted(REAL_JSON[i]), name
    assert int(ex["original_label"]) == val[ex["file_name"]], name


def test_unprepared_extra_set_says_where_to_put_the_archive(prepared, tmp_path):
  """Training checks the extra sets before it starts (`data.prepare`, build=False)."""
  import ml_collections

  from cnn_jax import data
  from cnn_jax.data import imagenet
  from cnn_jax.data.errors import DataError
  _, manual, _ = prepared
  config = ml_collections.ConfigDict(dict(
      dataset="imagenet2012", data_dir=str(tmp_path / "tfds"), manual_dir=manual,
      augment="none", extra_eval_datasets="imagenet_a"))
  with pytest.raises(DataError) as e:
    data.prepare(config)
  line = str(e.value)
  assert "\n" not in line and "imagenet_a: not prepared" in line
  assert "python -m cnn_jax.data.prepare --dataset=imagenet_a" in line
  assert f"--manual_dir={manual}" in line and os.path.join(manual, "imagenet-a.tar") in line
  with pytest.raises(DataError) as e:
    imagenet.builder("imagenet2012_real", config.data_dir, manual, build=False)
  assert "real.json" in str(e.value) and "ILSVRC2012_img_val.tar" in str(e.value)


@pytest.mark.parametrize("value", [("imagenet_a", "imagenet_r"), "imagenet_a,imagenet_r",
                                   ("imagenet_a,imagenet_r",), ("imagenet_a", " imagenet_r")])
def test_extra_eval_names_accept_tuples_and_comma_lists(value):
  import ml_collections

  from cnn_jax import data
  config = ml_collections.ConfigDict({"extra_eval_datasets": value})
  assert data.extra_eval_names(config) == ("imagenet_a", "imagenet_r")


def test_unknown_extra_set_is_one_line(tmp_path):
  import ml_collections

  from cnn_jax import data
  from cnn_jax.data.errors import DataError
  config = ml_collections.ConfigDict(dict(
      dataset="imagenet2012", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path),
      augment="none", extra_eval_datasets=("imagenet_b",)))
  with pytest.raises(DataError, match="'imagenet_b' is not an ImageNet evaluation set; "
                                      "choose from imagenet_v2"):
    data.prepare(config)


def test_fake_archive_fails_tfds_checksum_in_one_line(prepared, tmp_path):
  """The prepare CLI without the test's registration: TFDS finds the archive in the manual
  dir, validates it, rejects the fake, and the error names the file."""
  _, manual, _ = prepared
  proc = run("cnn_jax.data.prepare", "--dataset=imagenet_r",
             f"--data_dir={tmp_path / 'tfds'}", f"--manual_dir={manual}", timeout=120)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-3000:]
  assert f"{os.path.join(manual, 'imagenet-r.tar')} is not the authors' file" in errors[0]


def test_restrict_to_classes_and_real_top1():
  import jax.numpy as jnp

  from cnn_jax.train import steps
  logits = jnp.array([[9.0, 1.0, 2.0, 0.0, 3.0],   # best overall 0, in the subset 4
                      [0.0, 5.0, 1.0, 7.0, 2.0]])  # best overall 3, in the subset 1
  restricted = steps.restrict_to_classes(logits, (1, 4))
  assert jnp.argmax(restricted, -1).tolist() == [4, 1]
  assert bool(jnp.all(jnp.isneginf(restricted[:, [0, 2, 3]])))
  real = jnp.zeros((3, 5)).at[0, 0].set(1).at[1, 1].set(1).at[1, 2].set(1)
  logits3 = jnp.concatenate([logits, logits[:1]])  # third image: no ReaL labels, not counted
  correct, counted = steps.real_top1(logits3, real, jnp.ones(3))
  assert (float(correct), float(counted)) == (1.0, 2.0)  # image 0 right (0), image 1 wrong
  correct, counted = steps.real_top1(logits3, real, jnp.array([1.0, 0.0, 1.0]))
  assert (float(correct), float(counted)) == (1.0, 1.0)  # padding (mask 0) not counted


@pytest.mark.slow
def test_cli_evaluates_all_extra_sets_after_training(prepared, tmp_path, capfd, caplog):
  data_dir, manual, _ = prepared
  caplog.set_level(logging.INFO)
  proc = run_tiny_imagenet_training(
      capfd, tmp_path, data_dir, manual, "--config.num_train_steps=1", "--config.augment=none",
      f"--config.extra_eval_datasets=({','.join(repr(n) for n in EXTRA)})")
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  sizes = {"imagenet_v2": sum(V2_FOLDERS.values()), "imagenet2012_real": NUM_VAL,
           "imagenet_a": sum(A_WNIDS.values()), "imagenet_r": sum(R_WNIDS.values())}
  for name, n in sizes.items():
    assert results[f"{name}_count"] == n, name  # padding to batches of 4 masked out
    for metric in ("top1", "top5", "loss"):
      assert np.isfinite(results[f"{name}_{metric}"]), (name, metric)
    assert 0.0 <= results[f"{name}_top1"] <= results[f"{name}_top5"] <= 1.0, name
  # ImageNet-A / -R score only their classes: top-5 of 3 and 2 classes is every class.
  assert results["imagenet_a_top5"] == results["imagenet_r_top5"] == 1.0
  # imagenet2012_real is ImageNet's validation set with its original labels: same metrics.
  for metric in ("loss", "top1", "top5"):
    assert results[f"imagenet2012_real_{metric}"] == pytest.approx(results[metric]), metric
  # ReaL: over the 5 images real.json labels; a fraction of 5.
  real = results["imagenet2012_real_real_top1"]
  assert 0.0 <= real <= 1.0 and np.isclose(real * 5, round(real * 5))
  assert "imagenet2012_real_real_top1" in caplog.text  # logged too
