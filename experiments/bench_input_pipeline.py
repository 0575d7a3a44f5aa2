"""Input pipeline throughput, images/s per core, on JPEGs of ImageNet's typical size.

  python experiments/bench_input_pipeline.py [--images=300] [--seconds=8] [--threads=1]

Generates synthetic 500x375 JPEGs (smooth content plus sensor-like noise, quality 90, so
their size is close to ImageNet's ~110 kB average), keeps the encoded bytes in memory and
runs, in the same process, alternating rounds of:

  train   the training pipeline's per-example work (cnn_jax.data.imagenet_preprocess):
          decode_and_crop_jpeg of the chosen window, resize to 224, flip, [colour],
          normalise (as `imagenet.train_preprocess` asks for it: by the recipe's last
          pass where that pass can, with the colour recipes)
  naive   the same recipe done as decode-then-crop (with TF's default accurate IDCT, and
          again with the fast integer IDCT the training crops use): tf.io.decode_jpeg of the whole image,
          then (inception) crop the same kind of window and resize, or (resnet_scale)
          resize the whole image to short side S ~ U[256, 480] and crop 224, as the paper
          describes it; flip, [colour], normalise (the same `pipeline.normalize`: the
          ratio isolates decode-then-crop; a third naive run normalises the usual way,
          (x / 255 - mean) / std broadcast over the channels, as most pipelines do)

for the Inception crop and ResNet's scale augmentation, with and without their colour
augmentation; then decoding alone (the whole JPEG, nothing else), the ceiling of any
pipeline that decodes every pixel: when it is close to the naive figure, the JPEG's
entropy decoding, which a crop cannot skip for the rows above and beside the window,
bounds what decode_and_crop can gain. TF runs with `--threads` intra/inter
op threads and tf.data with the same number of map threads, so images/s / threads is the
per-core figure by wall clock; images per CPU-second of the process is printed too, the
figure that stays meaningful when other jobs share the cores. Reading records from disk is left out (in memory, as a cached dataset).

The colour distortion differs between the two sides: train runs `inception_color` (the
fused float math, XLA-compiled), naive runs `inception_color_tf` (TF's image ops, as
TF-slim and most reproductions do; the same random factors). `--color-alone` adds the
distortion by itself on `--size` px crops (decoded once, cached), fused vs TF ops:

  python experiments/bench_input_pipeline.py --images=100 --seconds=20 \
      --recipes "inception + colour distortion" --color-alone
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def synthetic_jpegs(n: int, h: int = 375, w: int = 500, seed: int = 0) -> list[bytes]:
  import numpy as np
  from PIL import Image
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float32)
    img += rng.normal(0, 12, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    out.append(buf.getvalue())
  return out


def photo_jpegs(paths: list[str], n: int, h: int = 375, w: int = 500,
                seed: int = 0) -> list[bytes]:
  """`n` JPEGs (quality 90) cut from real photographs: random crops of >= 70% of each
  side, resized to w x h, so the entropy of the coefficients is a photo's, not noise's."""
  import numpy as np
  from PIL import Image
  rng = np.random.default_rng(seed)
  photos = [Image.open(p).convert("RGB") for p in paths]
  out = []
  for i in range(n):
    photo = photos[i % len(photos)]
    pw, ph = photo.size
    cw, ch = int(pw * rng.uniform(0.7, 1.0)), int(ph * rng.uniform(0.7, 1.0))
    x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    img = photo.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)
    if rng.uniform() < 0.5:
      img = img.transpose(Image.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    out.append(buf.getvalue())
  return out


def naive_inception(image_bytes, rng_seed, size, color: bool, dct: str = ""):
  """decode-then-crop: the whole image is decoded, then the same window is cut out."""
  import tensorflow as tf

  from cnn_jax.data import imagenet_preprocess as ip
  crop, f, c = tf.unstack(tf.random.experimental.stateless_split(rng_seed, 3))
  image = tf.io.decode_jpeg(image_bytes, channels=3, dct_method=dct)
  shape = tf.shape(image)
  bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4])
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape, bbox, seed=crop, min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3),
      area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
  image = tf.slice(image, begin, crop_size)
  image = ip.resize_image(tf.cast(image, tf.float32), size, "bilinear")
  image = ip.flip(image, f)
  return ip.inception_color_tf(image, c) if color else image


def train_inception(image_bytes, rng_seed, size, color: bool, normalize):
  import tensorflow as tf

  from cnn_jax.data import imagenet_preprocess as ip
  from cnn_jax.data.pipeline import normalize as standardise
  if color:
    return ip.inception(image_bytes, rng_seed, size, normalize=normalize)
  crop, f, _ = tf.unstack(tf.random.experimental.stateless_split(rng_seed, 3))
  return standardise(ip.flip(ip.decode_and_inception_crop(image_bytes, crop, size), f),
                     *normalize)


def naive_resnet_scale(image_bytes, rng_seed, size, color: bool, dct: str = ""):
  """The paper's order: decode, resize the whole image to short side S ~ U[256, 480],
  random 224 crop, flip (PCA colour noise when `color`)."""
  import tensorflow as tf

  from cnn_jax.data import imagenet_preprocess as ip
  s_seed, c_seed, f, light = tf.unstack(tf.random.experimental.stateless_split(rng_seed, 4))
  image = tf.cast(tf.io.decode_jpeg(image_bytes, channels=3, dct_method=dct), tf.float32)
  scale = tf.random.stateless_uniform([], s_seed, 256, 481, dtype=tf.int32)
  hw = tf.cast(tf.shape(image)[:2], tf.float32)
  new = tf.cast(tf.round(hw * tf.cast(scale, tf.float32) / tf.reduce_min(hw)), tf.int32)
  image = tf.image.resize(image, new, method="bilinear")
  image = tf.image.stateless_random_crop(image, [size, size, 3], c_seed)
  image = ip.flip(image, f)
  return ip.pca_lighting(image, light) if color else image


def train_resnet_scale(image_bytes, rng_seed, size, color: bool, normalize):
  import tensorflow as tf

  from cnn_jax.data import imagenet_preprocess as ip
  from cnn_jax.data.pipeline import normalize as standardise
  if color:
    return ip.resnet_scale(image_bytes, rng_seed, size, normalize=normalize)
  crop, f, _ = tf.unstack(tf.random.experimental.stateless_split(rng_seed, 3))
  return standardise(ip.flip(ip.decode_and_scale_crop(image_bytes, crop, size, (256, 480)),
                             f), *normalize)


def decode_only(image_bytes, rng_seed, size, color: bool, dct: str = ""):
  """Decoding the whole JPEG and nothing else (its 1x1 corner is the output, run with
  size 1 so the normalisation has nothing to do): the ceiling of any pipeline that
  decodes every pixel."""
  import tensorflow as tf
  del rng_seed, size, color
  image = tf.io.decode_jpeg(image_bytes, channels=3, dct_method=dct)
  return tf.cast(tf.ensure_shape(image[:1, :1], [1, 1, 3]), tf.float32)


RECIPES = (
    ("inception crop + flip", naive_inception, train_inception, False),
    ("inception + colour distortion", naive_inception, train_inception, True),
    ("resnet_scale + flip", naive_resnet_scale, train_resnet_scale, False),
    ("resnet_scale + flip + PCA", naive_resnet_scale, train_resnet_scale, True),
)


def color_alone(jpegs, size: int, threads: int, rounds: int, seconds: float) -> dict:
  """The colour distortion by itself on `size` px crops of the JPEGs (decoded, resized and
  cached first): {"fused": inception_color, "tf_ops": inception_color_tf, "none": the
  same dataset without it} -> (images/s per thread by wall clock, per CPU-second)."""
  import tensorflow as tf

  from cnn_jax.data import imagenet_preprocess as ip
  crops = tf.data.Dataset.from_tensor_slices(jpegs).enumerate().map(
      lambda i, b: ip.decode_and_inception_crop(b, tf.stack([tf.constant(1, tf.int64), i]),
                                                size)).cache()
  fns = {"none": lambda x, s: x, "fused": ip.inception_color, "tf_ops": ip.inception_color_tf}
  its = {}
  for name, fn in fns.items():
    ds = crops.repeat().enumerate().map(
        lambda i, x, fn=fn: fn(x, tf.stack([tf.constant(0, tf.int64), i])),
        num_parallel_calls=threads, deterministic=True).batch(32).prefetch(2)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.autotune.enabled = False
    its[name] = iter(ds.with_options(options))
    for _ in range(3):
      next(its[name])
  return measure_rounds(its, rounds, seconds, threads)


def broadcast_normalize(image, mean, std):
  """The usual way to write it: (x / 255 - mean) / std, broadcast over the channels."""
  import tensorflow as tf
  image = tf.cast(image, tf.float32) / 255.0
  return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def pipeline(fn, jpegs, size: int, threads: int, color: bool, normalize_fn=None,
             normalizes: bool = False):
  """`fn(image_bytes, seed, size, color)` in a tf.data map, its output normalised by
  `normalize_fn` (default `pipeline.normalize`); with `normalizes`, `fn` takes
  `normalize=(mean, std)` and normalises itself."""
  import tensorflow as tf

  from cnn_jax.data.pipeline import normalize
  normalize_fn = normalize_fn or normalize
  mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
  if normalizes:
    one = lambda b, seed: fn(b, seed, size, color, (mean, std))
  else:
    one = lambda b, seed: normalize_fn(fn(b, seed, size, color), mean, std)
  ds = tf.data.Dataset.from_tensor_slices(jpegs).cache().repeat().enumerate()
  ds = ds.map(lambda i, b: one(b, tf.stack([tf.constant(0, tf.int64), i])),
              num_parallel_calls=threads, deterministic=True)
  ds = ds.batch(32).prefetch(2)
  options = tf.data.Options()
  options.threading.private_threadpool_size = threads
  options.autotune.enabled = False
  it = iter(ds.with_options(options))
  for _ in range(3):  # warm-up: tracing, caching
    next(it)
  return it


def measure_rounds(its: dict, rounds: int, seconds: float, threads: int) -> dict:
  """{name: (images/s per thread by wall clock, images per CPU-second)}: the median of
  `rounds` alternating rounds over the iterators, `seconds` per iterator in all."""
  runs = {k: [] for k in its}
  for _ in range(rounds):
    for k, it in its.items():
      runs[k].append(measure(it, seconds / rounds))
  return {k: (statistics.median(w for w, _ in v) / threads, statistics.median(c for _, c in v))
          for k, v in runs.items()}


def measure(it, seconds: float) -> tuple[float, float]:
  """(images per wall second, images per CPU-second of this process)."""
  n, start, cpu_start = 0, time.perf_counter(), time.process_time()
  while time.perf_counter() - start < seconds:
    n += int(next(it).shape[0])
  return n / (time.perf_counter() - start), n / (time.process_time() - cpu_start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=300)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--seconds", type=float, default=10.0, help="per pipeline")
  parser.add_argument("--threads", type=int, default=1)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--recipes", nargs="*", default=None,
                      help="labels of the recipes to run (default all; none: only the "
                           "decode ceiling)")
  parser.add_argument("--color-alone", action="store_true",
                      help="also time the colour distortion by itself (fused vs TF ops)")
  parser.add_argument("--photos", nargs="*", default=[],
                      help="JPEG/PNG photographs to cut the test images from, instead of "
                           "synthetic images")
  args = parser.parse_args()

  import tensorflow as tf

  from cnn_jax.data import imagenet_preprocess as ip
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(args.threads)

  print("load before:", os.popen("uptime").read().strip())
  jpegs = (photo_jpegs(args.photos, args.images) if args.photos
           else synthetic_jpegs(args.images))
  mean_kb = sum(map(len, jpegs)) / len(jpegs) / 1024
  kind = f"cut from {len(args.photos)} photo(s)" if args.photos else "synthetic"
  print(f"{len(jpegs)} JPEGs {kind}, 500x375, mean {mean_kb:.0f} kB; output "
        f"{args.size}x{args.size}; {args.threads} thread(s)")
  print("median of --rounds alternating rounds; images/s per core by wall clock "
        "(depressed when other jobs share the cores) and per CPU-second of this process")
  for label, naive_fn, train_fn, color in RECIPES:
    if args.recipes is not None and label not in args.recipes:
      continue
    its = {"naive": pipeline(naive_fn, jpegs, args.size, args.threads, color),
           "naive_fast_idct": pipeline(functools.partial(naive_fn, dct=ip.TRAIN_DCT), jpegs,
                                       args.size, args.threads, color),
           "naive_broadcast_norm": pipeline(naive_fn, jpegs, args.size, args.threads, color,
                                            broadcast_normalize),
           "train": pipeline(train_fn, jpegs, args.size, args.threads, color,
                             normalizes=True)}
    med = measure_rounds(its, args.rounds, args.seconds, args.threads)
    print(f"{label:30s} train {med['train'][0]:6.1f} wall / {med['train'][1]:6.1f} cpu   "
          f"naive {med['naive'][0]:6.1f} wall / {med['naive'][1]:6.1f} cpu   ratio "
          f"{med['train'][0] / med['naive'][0]:.2f}x wall, "
          f"{med['train'][1] / med['naive'][1]:.2f}x cpu   (vs naive with the same fast "
          f"IDCT: {med['train'][1] / med['naive_fast_idct'][1]:.2f}x cpu; vs naive with "
          f"broadcast normalisation: {med['train'][1] / med['naive_broadcast_norm'][1]:.2f}x "
          f"cpu)")
  if args.color_alone:
    med = color_alone(jpegs, args.size, args.threads, args.rounds, args.seconds)
    us = {k: 1e6 / cpu for k, (_, cpu) in med.items()}
    cost = {k: us[k] - us["none"] for k in ("fused", "tf_ops")}
    print(f"colour distortion alone: fused {cost['fused']:6.0f} us, TF ops "
          f"{cost['tf_ops']:6.0f} us of CPU per image (over {us['none']:.0f} us "
          f"for the cached crop alone); ratio {cost['tf_ops'] / cost['fused']:.2f}x cpu")
  # Where the time goes: decoding alone, at both IDCT settings.
  its = {k: pipeline(functools.partial(decode_only, dct=d), jpegs, 1, args.threads, False)
         for k, d in (("accurate", ""), ("fast", ip.TRAIN_DCT))}
  med = measure_rounds(its, args.rounds, args.seconds, args.threads)
  print("decode only (whole image, no crop / resize / normalise): " + ", ".join(
      f"{k} IDCT {wall:6.1f} wall / {cpu:6.1f} cpu" for k, (wall, cpu) in med.items()))
  print("load after: ", os.popen("uptime").read().strip())


if __name__ == "__main__":
  main()
