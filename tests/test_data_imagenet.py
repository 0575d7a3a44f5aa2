"""ImageNet path: a fake ImageNet in the real manual-dir layout, prepared by TFDS's own
`imagenet2012` builder and trained on through the CLI; every augmentation and evaluation
protocol checked for shapes, ranges and determinism; the image-folder dataset's skipping."""

import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from conftest import run_cli, subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_VAL = 6
TRAIN_PER_CLASS = 4


def jpeg_bytes(rng, h=60, w=80, color=None) -> bytes:
  from PIL import Image
  if color is None:  # smooth random image: a coarse grid upsampled
    coarse = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
  else:
    img = Image.fromarray(np.full((h, w, 3), color, np.uint8))
  buf = io.BytesIO()
  img.save(buf, format="JPEG", quality=90)
  return buf.getvalue()


def _add(tar, name, data: bytes):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def make_fake_imagenet(manual_dir: str) -> list[str]:
  """ILSVRC2012_img_train.tar (a tar of per-class n########.tar of JPEGs) and a flat
  ILSVRC2012_img_val.tar. TFDS labels validation images by zipping their sorted names with
  its bundled validation_labels.txt, so the val images are the first NUM_VAL names and the
  training classes are those images' classes."""
  from tensorflow_datasets.datasets.imagenet2012 import imagenet_common
  with open(os.fspath(imagenet_common.tfds.core.tfds_path(
      imagenet_common._VALIDATION_LABELS_FNAME))) as f:
    val_labels = f.read().split()[:NUM_VAL]
  classes = sorted(set(val_labels))
  rng = np.random.default_rng(0)
  os.makedirs(manual_dir, exist_ok=True)
  with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as outer:
    for synset in classes:
      buf = io.BytesIO()
      with tarfile.open(fileobj=buf, mode="w") as inner:
        for k in range(TRAIN_PER_CLASS):
          _add(inner, f"{synset}_{k}.JPEG", jpeg_bytes(rng))
      _add(outer, f"{synset}.tar", buf.getvalue())
  with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as val:
    for i in range(1, NUM_VAL + 1):
      _add(val, f"ILSVRC2012_val_{i:08d}.JPEG", jpeg_bytes(rng))
  return classes


def run(module, *args, timeout=240):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=subprocess_env(),
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fake_imagenet(tmp_path_factory):
  """(data_dir, manual_dir) with imagenet2012 prepared by the documented command."""
  root = tmp_path_factory.mktemp("imagenet")
  manual, data_dir = str(root / "manual"), str(root / "tfds")
  classes = make_fake_imagenet(manual)
  proc = run("cnn_jax.data.prepare", "--dataset=imagenet2012", f"--data_dir={data_dir}",
             f"--manual_dir={manual}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "imagenet2012 ready" in proc.stdout
  return data_dir, manual, classes


def test_prepared_by_the_real_tfds_builder(fake_imagenet):
  import tensorflow_datasets as tfds
  data_dir, _, classes = fake_imagenet
  b = tfds.builder("imagenet2012", data_dir=data_dir)
  assert b.is_prepared()
  assert b.info.splits["train"].num_examples == TRAIN_PER_CLASS * len(classes)
  assert b.info.splits["validation"].num_examples == NUM_VAL
  names = b.info.features["label"].names
  train_labels = {names[ex["label"]] for ex in tfds.as_numpy(b.as_dataset(split="train"))}
  val_labels = {names[ex["label"]] for ex in tfds.as_numpy(b.as_dataset(split="validation"))}
  assert train_labels == val_labels == set(classes)


def main_here(capfd, *args):
  """`python -m cnn_jax.main *args` in this process (conftest.run_cli): logs go to caplog."""
  return run_cli("cnn_jax.main", list(args), capfd)


def test_missing_tars_is_one_line(tmp_path, capfd):
  proc = main_here(capfd, "--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
             "--config.dataset=imagenet2012", f"--config.data_dir={tmp_path / 'tfds'}",
             "--config.model_kwargs.width=8", "--config.image_size=64")
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-2000:]
  line = errors[0]
  assert "ILSVRC2012_img_train.tar" in line and "ILSVRC2012_img_val.tar" in line
  assert str(tmp_path / "tfds" / "downloads" / "manual") in line
  assert "python -m cnn_jax.data.prepare --dataset=imagenet2012" in line


def test_jpeg_augment_on_fashion_mnist_is_one_line(tmp_path, capfd):
  proc = main_here(capfd, "--config=configs/fashion_mnist.py", f"--workdir={tmp_path}",
             f"--config.data_dir={tmp_path / 'tfds'}", "--config.augment=inception")
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-2000:]
  assert "crops encoded JPEGs" in errors[0]


def run_tiny_imagenet_training(capfd, workdir, data_dir, manual, *overrides):
  """`python -m cnn_jax.main` (in this process) on the fake ImageNet: a width-8 ResNet-18
  at 32 px, batch 4 (later flags in `overrides` win)."""
  return main_here(capfd, "--config=configs/fashion_mnist.py", f"--workdir={workdir}",
             "--config.dataset=imagenet2012", f"--config.data_dir={data_dir}",
             f"--config.manual_dir={manual}", "--config.model=resnet18",
             "--config.model_kwargs.width=8", "--config.model_kwargs.stem=small",
             "--config.image_size=32", "--config.batch_size=4", "--config.eval_batch_size=4",
             "--config.shuffle_buffer=16", "--config.log_every_steps=1", *overrides)


@pytest.mark.slow
def test_cli_trains_and_evaluates_on_fake_imagenet(fake_imagenet, tmp_path, capfd):
  data_dir, manual, _ = fake_imagenet
  proc = run_tiny_imagenet_training(capfd, tmp_path, data_dir, manual,
                                    "--config.num_train_steps=2",
                                    "--config.augment=inception")
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["steps"] == 2 and results["dataset"] == "imagenet2012"
  assert results["eval_examples"] == NUM_VAL  # 6 images in 2 batches of 4: padding masked


# --- augmentations and protocols, in-process on the encoded JPEGs -----------------------

def _encoded(h=375, w=500, seed=0):
  import tensorflow as tf
  return tf.constant(jpeg_bytes(np.random.default_rng(seed), h, w))


JPEG_AUGMENTS = ["alexnet", "vgg_scale_jitter", "vgg_fixed_scale", "resnet_scale", "inception", "autoaugment",
                 "randaugment", "none", "flip_crop"]


@pytest.mark.parametrize("name", JPEG_AUGMENTS)
def test_train_augmentation_shape_range_determinism(name):
  import tensorflow as tf

  from cnn_jax.data import augment, imagenet
  pre = imagenet.train_preprocess(augment.get(name), size=64, mean=(0.0,) * 3,
                                  std=(1.0,) * 3, method="bilinear", crop_fraction=0.875)
  fn = tf.function(lambda ex, s: pre(ex, s))
  ex = {"image": _encoded(), "label": tf.constant(3, tf.int64)}
  seeds = [tf.constant([7, i], tf.int32) for i in range(4)]
  outs = [fn(ex, s)["image"].numpy() for s in seeds]
  again = fn(ex, seeds[0])["image"].numpy()
  for out in outs:
    assert out.shape == (64, 64, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0 + 1e-6  # mean 0, std 1: [0, 1] scale
  np.testing.assert_array_equal(outs[0], again)  # same seed -> same image
  if name != "none":
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])  # seeds differ


ENCODED = ["alexnet", "vgg_scale_jitter", "vgg_fixed_scale", "resnet_scale", "inception",
           "autoaugment"]


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("name", ENCODED)
def test_augmentation_normalises_as_pipeline_normalize_does(name, jit, monkeypatch):
  """With normalize=(mean, std) an encoded augmentation returns what `pipeline.normalize`
  makes of its [0, 255] output, whether its last pass normalises (XLA, `jit`) or TF's ops
  do; 16 seeds cover the colour distortion's four orders."""
  import tensorflow as tf

  from cnn_jax.data import augment
  from cnn_jax.data import imagenet_preprocess as ip
  from cnn_jax.data.pipeline import normalize
  monkeypatch.setattr(ip, "COLOR_JIT", jit)
  mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
  aug = augment.get(name)
  image = _encoded(seed=4)
  orders = set()
  for i in range(16 if name == "inception" else 4):
    seed = tf.constant([9, i], tf.int32)
    fused = aug(image, seed, 48, normalize=(mean, std)).numpy()
    plain = aug(image, seed, 48).numpy()
    assert plain.min() >= 0.0 and plain.max() <= 255.0
    np.testing.assert_allclose(fused, normalize(plain, mean, std).numpy(), rtol=0, atol=2e-5)
    if name == "inception":
      orders.add(int(ip._color_factors(tf.unstack(
          tf.random.experimental.stateless_split(seed, 3))[2])[0]))
  assert name != "inception" or orders == {0, 1, 2, 3}


def test_scale_crop_windows_follow_the_papers():
  """At 224 px, VGG's window is 224/S of the short side with S in [256, 512]."""
  import tensorflow as tf

  from cnn_jax.data import imagenet_preprocess as ip
  calls = []
  real = ip._decode_window

  def spy(image_bytes, oy, ox, h, w, dct_method=ip.EVAL_DCT):
    calls.append(int(h))
    return real(image_bytes, oy, ox, h, w, dct_method)

  ip._decode_window = spy
  try:
    for i in range(20):
      ip.decode_and_scale_crop(_encoded(), tf.constant([1, i]), 224, (256, 512))
  finally:
    ip._decode_window = real
  assert all(round(224 * 375 / 512) <= side <= round(224 * 375 / 256) for side in calls)
  assert len(set(calls)) > 5


def test_resize_stays_in_range_with_a_clip_only_where_needed():
  """Bilinear and nearest outputs stay inside the input's range without a clip (the
  resize leaves them unclipped); bicubic overshoots [0, 255] and is clipped."""
  import tensorflow as tf

  from cnn_jax.data import imagenet_preprocess as ip
  rng = np.random.default_rng(0)
  for i in range(40):
    h, w = rng.integers(2, 50, 2)
    image = rng.choice([0.0, 1.0, 254.0, 255.0], (h, w, 3)).astype(np.float32)
    for size in (224, int(rng.integers(1, 120)), [int(rng.integers(1, 90)), 97]):
      for method in ("bilinear", "nearest"):
        out = ip.resize_image(image, size, method).numpy()
        assert image.min() <= out.min() and out.max() <= image.max(), (h, w, size, method)
  image = np.zeros((8, 8, 3), np.float32)
  image[::2, ::2] = 255.0
  assert tf.image.resize(image, [21, 21], method="bicubic").numpy().max() > 255.0
  out = ip.resize_image(image, 21, "bicubic").numpy()
  assert out.min() == 0.0 and out.max() == 255.0


@pytest.mark.parametrize("name", ["Equalize", "AutoContrast", "Rotate", "ShearX", "TranslateY",
                                  "Posterize", "Solarize", "SolarizeAdd", "Color", "Contrast",
                                  "Brightness", "Sharpness", "Cutout", "Invert"])
def test_autoaugment_ops_keep_uint8_shape(name):
  import tensorflow as tf

  from cnn_jax.data import autoaugment as aa
  image = tf.constant(np.random.default_rng(1).integers(0, 256, (32, 40, 3), np.uint8))
  out = aa._apply(name, image, 7.0, tf.constant([1, 2]), 224)
  assert out.dtype == tf.uint8 and out.shape == (32, 40, 3)


def test_equalize_matches_pil():
  import tensorflow as tf
  from PIL import Image, ImageOps

  from cnn_jax.data import autoaugment as aa
  image = np.random.default_rng(2).integers(40, 180, (24, 24, 3), np.uint8)
  ours = aa.equalize(tf.constant(image)).numpy()
  np.testing.assert_array_equal(ours, np.asarray(ImageOps.equalize(Image.fromarray(image))))


def test_mixup_and_cutmix_batches():
  import tensorflow as tf

  from cnn_jax.data import augment
  rng = np.random.default_rng(0)
  batch = {"image": tf.constant(rng.random((4, 16, 16, 3), np.float32)),
           "label": tf.constant([0, 1, 2, 3], tf.int64)}
  for kw in ({"mixup_alpha": 0.2}, {"cutmix_alpha": 1.0}, {"mixup_alpha": 0.2,
                                                           "cutmix_alpha": 1.0}):
    fn = tf.function(lambda b, s, kw=kw: augment.mix_batch(b, s, **kw))
    a = fn(batch, tf.constant([0, 5]))
    b = fn(batch, tf.constant([0, 5]))
    np.testing.assert_array_equal(a["image"].numpy(), b["image"].numpy())
    np.testing.assert_array_equal(a["mix_label"].numpy(), [3, 2, 1, 0])
    w = a["mix_weight"].numpy()
    assert w.shape == (4,) and np.all((0 <= w) & (w <= 1)) and np.all(w == w[0])
    lo = np.minimum(batch["image"].numpy(), batch["image"].numpy()[::-1])
    hi = np.maximum(batch["image"].numpy(), batch["image"].numpy()[::-1])
    assert np.all(a["image"].numpy() >= lo - 1e-6) and np.all(a["image"].numpy() <= hi + 1e-6)


@pytest.mark.parametrize("protocol,keys,shape", [
    ("center", ["image"], (64, 64, 3)),
    ("flip", ["image"], (2, 64, 64, 3)),
    ("ten_crop", ["image"], (10, 64, 64, 3)),
    ("dense", ["image@73", "image@110", "image@146"], None),
])
def test_eval_protocol_views(protocol, keys, shape):
  import tensorflow as tf

  from cnn_jax.data import imagenet
  pre = imagenet.eval_preprocess(protocol=protocol, size=64, mean=(0.5,) * 3, std=(0.5,) * 3,
                                 method="bicubic", crop_fraction=64 / 96)
  ex = {"image": _encoded(), "label": tf.constant(1, tf.int64)}
  out = pre(ex, tf.zeros([2], tf.int32))
  again = pre(ex, tf.zeros([2], tf.int32))
  assert sorted(k for k in out if k.startswith("image")) == sorted(keys)
  for k in keys:
    x = out[k].numpy()
    q = int(k.split("@")[1]) if "@" in k else None
    assert x.shape == (shape or (2, q, q, 3))
    assert -1.0 - 1e-5 <= x.min() and x.max() <= 1.0 + 1e-5  # Inception's [-1, 1]
    np.testing.assert_array_equal(x, again[k].numpy())
  if protocol == "flip":  # the centre view, then its mirror
    center = imagenet.eval_preprocess(
        protocol="center", size=64, mean=(0.5,) * 3, std=(0.5,) * 3, method="bicubic",
        crop_fraction=64 / 96)(ex, tf.zeros([2], tf.int32))["image"].numpy()
    np.testing.assert_array_equal(out["image"].numpy()[0], center)
    np.testing.assert_array_equal(out["image"].numpy()[1], center[:, ::-1])


def test_real_labels_multi_hot():
  import tensorflow as tf

  from cnn_jax.data import imagenet
  pre = imagenet.eval_preprocess(protocol="center", size=32, mean=(0.0,) * 3, std=(1.0,) * 3,
                                 method="bilinear", crop_fraction=0.875,
                                 label_key="original_label")
  ex = {"image": _encoded(), "original_label": tf.constant(5, tf.int64),
        "real_label": tf.constant([5, 9], tf.int64)}
  out = pre(ex, tf.zeros([2], tf.int32))
  assert int(out["label"]) == 5 and out["real_labels"].numpy().sum() == 2
  empty = dict(ex, real_label=tf.zeros([0], tf.int64))
  assert pre(empty, tf.zeros([2], tf.int32))["real_labels"].numpy().sum() == 0


def test_multi_view_eval_agrees_with_center_on_a_position_free_model():
  """A global-average-pool + dense model ignores position, and on constant-colour images
  every crop, scale and flip has the same pixels: 10-crop and dense == centre crop."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import tensorflow as tf

  from cnn_jax.data import imagenet
  from cnn_jax.train import steps

  class PoolDense(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      return nn.Dense(5)(jnp.mean(x, axis=(1, 2)))

  model = PoolDense()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  colors = [(200, 30, 90), (10, 240, 120), (128, 128, 128)]
  images = [tf.constant(jpeg_bytes(None, 375, 500, c)) for c in colors]

  def batch(protocol):
    pre = imagenet.eval_preprocess(protocol=protocol, size=32, mean=(0.485, 0.456, 0.406),
                                   std=(0.229, 0.224, 0.225), method="bilinear",
                                   crop_fraction=0.875, scales=(32, 48))
    outs = [pre({"image": im, "label": tf.constant(0, tf.int64)}, tf.zeros([2], tf.int32))
            for im in images]
    return {k: np.stack([o[k].numpy() for o in outs]) for k in outs[0]}

  center = steps.predict(model.apply, variables, batch("center"))
  for protocol in ("ten_crop", "dense"):
    for average in ("probs", "logits"):
      multi = steps.predict(model.apply, variables, batch(protocol), average)
      ref = center if average == "probs" else steps.predict(
          model.apply, variables, batch("center"), "logits")
      np.testing.assert_allclose(multi, ref, atol=2e-3)
  # And on a textured image, flips alone change nothing for this model.
  textured = batch("ten_crop")
  tc = textured["image"]
  mirrored = {"image": np.concatenate([tc[:, :5], tc[:, :5, :, ::-1]], axis=1)}
  np.testing.assert_allclose(steps.predict(model.apply, variables, mirrored),
                             steps.predict(model.apply, variables,
                                                    {"image": tc[:, :5]}), atol=1e-5)


def test_train_stream_resumes_and_is_deterministic(fake_imagenet):
  """The epoch-seeded stream: resuming at step k gives the uninterrupted run's batches."""
  import ml_collections

  from cnn_jax import data, models
  data_dir, manual, _ = fake_imagenet
  config = ml_collections.ConfigDict(dict(
      dataset="imagenet2012", data_dir=data_dir, manual_dir=manual, source_dir="",
      image_size=32, augment="resnet_scale", batch_size=4, eval_batch_size=4, seed=3,
      shuffle_buffer=8, prefetch=1, mixup_alpha=0.2))
  spec = models.spec("resnet18")
  inp = data.create_input(config, model_spec=spec)
  full = [next(it) for it in [inp.train_iter(0)] for _ in range(9)]  # > 1 epoch (len 12)
  resumed = inp.train_iter(5)
  for step in range(5, 9):
    got = next(resumed)
    for k in ("image", "label", "mix_label", "mix_weight"):
      np.testing.assert_array_equal(got[k], full[step][k])
  again = inp.train_iter(0)
  np.testing.assert_array_equal(next(again)["image"], full[0]["image"])
  evals = list(inp.eval_iter())
  assert sum(b["mask"].sum() for b in evals) == NUM_VAL


def test_epoch_shuffle_ignores_tf_global_seed(fake_imagenet):
  """`tf.random.set_seed` (0 used to raise inside TF; others changed the order) leaves the
  epoch-seeded stream's batches as they are without a global seed."""
  import ml_collections
  import tensorflow as tf

  from cnn_jax import data, models
  data_dir, manual, _ = fake_imagenet
  config = ml_collections.ConfigDict(dict(
      dataset="imagenet2012", data_dir=data_dir, manual_dir=manual, source_dir="",
      image_size=16, augment="resnet_scale", batch_size=4, eval_batch_size=4, seed=3,
      shuffle_buffer=8, prefetch=1))
  inp = data.create_input(config, model_spec=models.spec("resnet18"))

  def labels():
    it = inp.train_iter(0)
    return np.concatenate([next(it)["label"] for _ in range(6)])  # two epochs

  reference = labels()
  try:
    for global_seed in (0, 42):
      tf.random.set_seed(global_seed)
      np.testing.assert_array_equal(labels(), reference)
  finally:
    tf.random.set_seed(None)
  assert len(set(map(tuple, reference.reshape(2, -1)))) == 2  # the epochs differ


def test_pipelines_are_traced_without_autograph(fake_imagenet, monkeypatch):
  """The map functions (train with mixup, epoch shuffle, eval, padding) are traced as
  written: AutoGraph's conversion, ~0.6 s of CPU per pipeline, never runs."""
  import ml_collections
  from tensorflow.python.autograph.impl import api

  from cnn_jax import data, models

  converted = []  # (AutoGraph falls back to the unconverted function if this raised)
  real = api._convert_actual
  monkeypatch.setattr(api, "_convert_actual",
                      lambda entity, ctx: converted.append(entity) or real(entity, ctx))
  data_dir, manual, _ = fake_imagenet
  config = ml_collections.ConfigDict(dict(
      dataset="imagenet2012", data_dir=data_dir, manual_dir=manual, source_dir="",
      image_size=16, augment="inception", batch_size=4, eval_batch_size=4, seed=3,
      shuffle_buffer=8, prefetch=1, mixup_alpha=0.2))
  inp = data.create_input(config, model_spec=models.spec("resnet18"))
  assert next(inp.train_iter(0))["image"].shape == (4, 16, 16, 3)
  assert sum(b["mask"].sum() for b in inp.eval_iter()) == NUM_VAL
  assert converted == []


def test_image_folder_skips_bad_files(tmp_path):
  import ml_collections

  from cnn_jax import data, models
  from cnn_jax.data import image_folder
  rng = np.random.default_rng(0)
  src = tmp_path / "src"
  for split, n in (("train", 3), ("val", 2)):
    for cls in ("cat", "dog"):
      (src / split / cls).mkdir(parents=True)
      for k in range(n):
        (src / split / cls / f"{k}.jpg").write_bytes(jpeg_bytes(rng, 40, 50))
  good = jpeg_bytes(rng, 40, 50)
  (src / "train" / "cat" / "truncated.jpg").write_bytes(good[: len(good) // 2])
  (src / "train" / "dog" / "notes.jpg").write_bytes(b"not an image")
  from PIL import Image
  Image.fromarray(rng.integers(0, 255, (20, 30, 3), np.uint8)).save(
      src / "train" / "dog" / "x.png")
  config = ml_collections.ConfigDict(dict(
      dataset="image_folder", data_dir=str(tmp_path / "tfds"), source_dir=str(src),
      image_size=32, augment="inception", batch_size=2, eval_batch_size=3, seed=0,
      shuffle_buffer=8, prefetch=1))
  inp = data.create_input(config, model_spec=models.spec("resnet18"))
  assert inp.info.num_classes == 2
  assert inp.builder.info.splits["train"].num_examples == 7  # 6 JPEGs + the PNG
  assert sorted(os.path.basename(p) for p in image_folder.skipped(inp.builder)) == [
      "notes.jpg", "truncated.jpg"]
  batch = next(inp.train_iter(0))
  assert batch["image"].shape == (2, 32, 32, 3)
  assert sum(b["mask"].sum() for b in inp.eval_iter()) == 4
