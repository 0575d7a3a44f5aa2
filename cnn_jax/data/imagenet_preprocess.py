"""Decode + crop + augment of encoded JPEGs: the ImageNet papers' training augmentations.

Every function here takes the encoded bytes, not a decoded image: the crop window is
chosen from the JPEG header (`extract_jpeg_shape`) and only that window is decoded
(`decode_and_crop_jpeg`), which skips the IDCT of the pixels a crop throws away. A scale
augmentation ("resize the short side to S, take a random 224 crop") is therefore done as
"decode the window that becomes the 224 crop after resizing, then resize it to 224": the
same pixels, up to the resampling filter.

Outputs are float32 [size, size, 3] in [0, 255], or standardised with the model's
mean / std when a recipe is given `normalize=(mean, std)` (what the training pipeline
does): the recipe's last clip and the normalisation are then one XLA pass where it can
(PCA lighting; the colour distortion's orders that end in a clip), instead of a clip and
then `pipeline.normalize`. All randomness is stateless, from a [2] int32 seed.
"""

from __future__ import annotations

from cnn_jax.data.pipeline import normalization, normalized

# AlexNet's PCA colour augmentation (Krizhevsky et al. 2012, Section 4.1): eigenvalues and
# eigenvectors of the 3x3 covariance of ImageNet RGB pixels in [0, 1], as published with
# fb.resnet.torch (the figures every reproduction uses).
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009),
              (-0.5808, -0.0045, -0.8140),
              (-0.5836, -0.6948, 0.4203))


def _tf():
  import tensorflow as tf
  return tf


def _seeds(rng_seed, n: int):
  return _tf().unstack(_tf().random.experimental.stateless_split(rng_seed, n))


def clip_pixels(image):
  """`image` clipped to [0, 255] in one pass: TF's single-kernel ClipByValue op, where
  tf.clip_by_value runs a minimum then a maximum (~70 us less per 224 px image, 1 core)."""
  return _tf().raw_ops.ClipByValue(t=image, clip_value_min=0.0, clip_value_max=255.0)


# Resize methods whose every output is a convex combination of input pixels computed in an
# order that float rounding cannot push past the inputs' range (TF's bilinear lerps, nearest
# copies), so the image needs no clip after them; the others (bicubic, lanczos, ...) overshoot.
_IN_RANGE_RESIZE = ("bilinear", "nearest")


def resize_image(image, size, method: str):
  """tf.image.resize of a [0, 255] image to `size` (an int for a square, or [h, w]),
  clipped back to [0, 255] where `method` can overshoot."""
  size = [size, size] if isinstance(size, int) else size
  image = _tf().image.resize(image, size, method=method)
  return image if method in _IN_RANGE_RESIZE else clip_pixels(image)


# Training crops decode with libjpeg's fast integer IDCT: ~30% less decode time, pixel
# differences of a few levels at most, far below the augmentation's own changes.
# Evaluation keeps the accurate IDCT, so reported accuracies use the exact pixels.
TRAIN_DCT = "INTEGER_FAST"
EVAL_DCT = ""  # TF's default: libjpeg's accurate integer IDCT


def _decode_window(image_bytes, oy, ox, h, w, dct_method: str = EVAL_DCT):
  tf = _tf()
  window = tf.stack([oy, ox, h, w])
  return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3,
                                       dct_method=dct_method)


def _jpeg_hw(image_bytes):
  tf = _tf()
  shape = tf.image.extract_jpeg_shape(image_bytes)
  return shape[0], shape[1]


def center_window(h, w, crop_fraction: float):
  """The centred square of side crop_fraction * short side (Szegedy et al.'s 0.875)."""
  tf = _tf()
  side = tf.cast(tf.round(crop_fraction * tf.cast(tf.minimum(h, w), tf.float32)), tf.int32)
  side = tf.maximum(side, 1)
  return (h - side + 1) // 2, (w - side + 1) // 2, side, side


def decode_and_center_crop(image_bytes, size: int, crop_fraction: float = 0.875,
                           method: str = "bilinear"):
  """Evaluation crop: resize the short side to size / crop_fraction, keep the centre
  size x size (equivalently: the centred crop_fraction of the short side, resized)."""
  h, w = _jpeg_hw(image_bytes)
  image = _decode_window(image_bytes, *center_window(h, w, crop_fraction))
  return resize_image(_tf().cast(image, _tf().float32), size, method)


def _random_offset(limit, seed):
  tf = _tf()
  return tf.random.stateless_uniform([], seed, minval=0, maxval=tf.maximum(limit, 0) + 1,
                                     dtype=tf.int32)


def decode_and_scale_crop(image_bytes, rng_seed, size: int, short_side_range,
                          method: str = "bilinear"):
  """Resize the short side to S ~ U[short_side_range] (integer), then a random
  size x size crop: VGG's scale jittering (S in [256, 512], Simonyan & Zisserman 2014,
  Section 3.1) and ResNet's scale augmentation (S in [256, 480], He et al. 2015, 3.4)."""
  tf = _tf()
  s_seed, y_seed, x_seed = _seeds(rng_seed, 3)
  lo, hi = short_side_range
  scale = tf.random.stateless_uniform([], s_seed, minval=lo, maxval=hi + 1, dtype=tf.int32)
  h, w = _jpeg_hw(image_bytes)
  short = tf.minimum(h, w)
  side = tf.cast(tf.round(tf.cast(size * short, tf.float32) / tf.cast(scale, tf.float32)),
                 tf.int32)
  side = tf.clip_by_value(side, 1, short)
  oy, ox = _random_offset(h - side, y_seed), _random_offset(w - side, x_seed)
  image = _decode_window(image_bytes, oy, ox, side, side, TRAIN_DCT)
  return resize_image(tf.cast(image, tf.float32), size, method)


def decode_and_alexnet_crop(image_bytes, rng_seed, size: int, resize: int,
                            method: str = "bilinear"):
  """AlexNet (Krizhevsky et al. 2012, Section 2): short side to `resize` (256), the
  central resize x resize patch, then a random size x size crop (224, or 227 as in Caffe)."""
  tf = _tf()
  y_seed, x_seed = _seeds(rng_seed, 2)
  h, w = _jpeg_hw(image_bytes)
  short = tf.minimum(h, w)
  side = tf.cast(tf.round(tf.cast(size * short, tf.float32) / float(resize)), tf.int32)
  side = tf.clip_by_value(side, 1, short)
  oy0, ox0 = (h - short) // 2, (w - short) // 2
  oy = oy0 + _random_offset(short - side, y_seed)
  ox = ox0 + _random_offset(short - side, x_seed)
  image = _decode_window(image_bytes, oy, ox, side, side, TRAIN_DCT)
  return resize_image(tf.cast(image, tf.float32), size, method)


def decode_and_inception_crop(image_bytes, rng_seed, size: int,
                              area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3),
                              method: str = "bilinear", crop_fraction: float = 0.875):
  """Random-resized crop (Szegedy et al. 2014, Section 6): a window covering 8-100% of
  the area with aspect ratio in [3/4, 4/3]; TF's sampler, falling back to the centre
  crop when 10 attempts fail (as the TF / flax ImageNet references do)."""
  tf = _tf()
  shape = tf.image.extract_jpeg_shape(image_bytes)
  bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4])
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape, bbox, seed=rng_seed, min_object_covered=0.1, aspect_ratio_range=aspect_range,
      area_range=area_range, max_attempts=10, use_image_if_no_bounding_boxes=True)
  oy, ox, _ = tf.unstack(begin)
  ch, cw, _ = tf.unstack(crop_size)
  failed = tf.logical_and(tf.equal(ch, shape[0]), tf.equal(cw, shape[1]))
  cy, cx, cs, _ = center_window(shape[0], shape[1], crop_fraction)
  oy, ox = tf.where(failed, cy, oy), tf.where(failed, cx, ox)
  ch, cw = tf.where(failed, cs, ch), tf.where(failed, cs, cw)
  image = _decode_window(image_bytes, oy, ox, ch, cw, TRAIN_DCT)
  return resize_image(tf.cast(image, tf.float32), size, method)


def flip(image, rng_seed):
  return _tf().image.stateless_random_flip_left_right(image, rng_seed)


def pca_lighting(image, rng_seed, sigma: float = 0.1, jit: bool | None = None,
                 normalize=None):
  """AlexNet's colour augmentation: add eigvec @ (alpha * eigval), alpha ~ N(0, sigma),
  one draw per image (Krizhevsky et al. 2012, Section 4.1). Image in [0, 255]; the
  result is clipped to [0, 255], then normalised when `normalize` = (mean, std).

  The add, the clip and the normalisation run as one XLA pass where TF's XLA may compile
  (`jit` None: as the colour distortion decides, `COLOR_JIT` and `tf_xla_usable()`):
  200 against 400 us per 224 px image on one core for TF's bias_add and ClipByValue
  without the normalisation (2026-12-07)."""
  tf = _tf()
  alpha = tf.random.stateless_normal([3], rng_seed, stddev=sigma)
  rgb = 255.0 * tf.linalg.matvec(tf.constant(PCA_EIGVEC, tf.float32),
                                 alpha * tf.constant(PCA_EIGVAL, tf.float32))
  jit = (COLOR_JIT and tf_xla_usable()) if jit is None else jit
  return _clip_and_normalize(image, rgb, normalize, jit)


def _clip_and_normalize(image, add, normalize, jit: bool):
  """clip(image + add, 0, 255) for a per-channel [3] `add`, then normalised when
  `normalize` = (mean, std) is given. With `jit`, one XLA pass; otherwise TF's ops
  (`bias_add`, not `image + add`: TF's broadcast over a trailing 3 is ~4x slower)."""
  tf = _tf()
  if not jit:
    return normalized(clip_pixels(tf.nn.bias_add(image, add)), normalize)
  scale, offset = normalization(*normalize) if normalize else ((1.0,) * 3, (0.0,) * 3)
  fn = _compiled("clip_and_normalize",
                 lambda x, a, s, o: tf.clip_by_value(x + a, 0.0, 255.0) * s + o)
  return fn(image, add, tf.constant(scale, tf.float32), tf.constant(offset, tf.float32))


# Inception's photometric distortions (TF-slim `distort_color`): brightness 32/255,
# saturation and contrast [0.5, 1.5], hue 0.2, in one of four orders chosen at random,
# clipped to the valid range once at the end (as TF-slim does: the ops in between see
# values out of range).
_COLOR_ORDERS = ("bshc", "sbch", "chbs", "hscb")  # TF-slim's four orderings


def _color_factors(rng_seed):
  """(order, brightness delta, saturation factor, hue delta, contrast factor): the draws
  of tf.image.stateless_random_{brightness, saturation, hue, contrast} for these seeds."""
  tf = _tf()
  order_seed, b, s, h, c = _seeds(rng_seed, 5)
  u = lambda seed, lo, hi: tf.random.stateless_uniform([], seed, minval=lo, maxval=hi)
  order = tf.random.stateless_uniform([], order_seed, minval=0, maxval=4, dtype=tf.int32)
  return order, u(b, -32.0 / 255.0, 32.0 / 255.0), u(s, 0.5, 1.5), u(h, -0.2, 0.2), \
      u(c, 0.5, 1.5)


def inception_color_tf(image, rng_seed):
  """The distortion with TF's image ops (what TF-slim runs): the reference the fused
  `inception_color` is tested against, and the naive side of the input benchmark. The
  same seeds draw the same factors and order as `inception_color`."""
  tf = _tf()
  order, b, s, h, c = _color_factors(rng_seed)
  x = image / 255.0
  ops = {"b": lambda x: tf.image.adjust_brightness(x, b),
         "s": lambda x: tf.image.adjust_saturation(x, s),
         "h": lambda x: tf.image.adjust_hue(x, h),
         "c": lambda x: tf.image.adjust_contrast(x, c)}

  def apply(order):
    def run():
      y = x
      for op in order:
        y = ops[op](y)
      return y
    return run

  x = tf.switch_case(order, [apply(o) for o in _COLOR_ORDERS])
  x.set_shape(image.shape)
  return tf.clip_by_value(x, 0.0, 1.0) * 255.0


# Hue and saturation (with a brightness offset folded into the same pass) as float math on
# the interleaved pixels, written so that XLA compiles each pass into one vectorised loop
# over the image (TF's AdjustHue and AdjustSaturation kernels are branchy per-pixel
# loops). They work on the image flattened to [h * w * 3]: every element computes its own
# output channel from its pixel's two other channels, which sit at fixed offsets in the
# flat array (`_per_element`), with one formula for the three channels (the hue is
# measured from the element's own channel). Both are scale-free, so the distortion runs
# on [0, 255] directly. Each matches the tf.image op with the same factor to float
# rounding, values out of [0, 1] included (TF-slim's intermediate orders produce them):
#   saturation: HSV with V = max, S = (max - min) / max, S scaled and clamped to [0, 1];
#     as in TF's kernel, a pixel with max <= 0 has S = 0 and comes out grey at its max.
#   hue: as in TF's kernel, max and min stay, the middle channel moves; no clamping.


def _per_element(flat, fn):
  """fn(own, next, previous) for every element of a flat interleaved RGB array, next /
  previous being the other channels of its pixel (G, B for R; B, R for G; R, G for B).
  They are the elements 1 or 2 places away: plain shifted slices of the array padded by
  two elements at each end (which no element selects), so the loop stays contiguous and
  writes its output directly (an earlier version that did the first and last pixel apart
  and concatenated the pieces made the pass ~5% slower: 604 vs 572 us per 224 px image
  in a tf.data map, 1 core)."""
  tf = _tf()
  n = tf.shape(flat)[0]
  padded = tf.pad(flat, [[2, 2]])
  channel = tf.range(n) % 3
  xm2, xm1, own, xp1, xp2 = (padded[:n], padded[1:n + 1], padded[2:n + 2], padded[3:n + 3],
                             padded[4:])
  return fn(own, tf.where(channel == 2, xm2, xp1), tf.where(channel == 0, xp2, xm1))


def _hue_distance(own, nxt, prv, mx, rng, delta):
  """Distance on the hue circle, in sixths of a turn (0 to 3), between the pixel's hue
  shifted by delta turns and this element's channel (R at 0, G at 2, B at 4): within 1
  the channel is the max, beyond 2 the min, linear in between (TF's hv_range_to_rgb)."""
  tf = _tf()
  own_max, nxt_max = own >= mx, nxt >= mx
  num = tf.where(own_max, nxt - prv, tf.where(nxt_max, prv - own, own - nxt))
  offset = tf.where(own_max, 0.0, tf.where(nxt_max, 2.0, 4.0))
  # num / rng + offset: the hue measured from this channel, in [-1, 5]. t = that + 6 delta
  # - 3, the constant taken mod 6 into [-5, 1) so that t is in [-6, 6), where the
  # circular distance to the channel (to -3 = 3 for t) is ||t| - 3|.
  shift = tf.math.floormod(6.0 * delta + 2.0, 6.0) - 5.0
  t = num / tf.maximum(rng, 1e-30) + (offset + shift)
  return tf.abs(tf.abs(t) - 3.0)


def _saturation_fn(factor):
  """x' = max - k (max - x), k = min(factor, max / (max - min)): S scaled, clamped at 1."""
  tf = _tf()

  def fn(own, nxt, prv):
    mx = tf.maximum(own, tf.maximum(nxt, prv))
    mn = tf.minimum(own, tf.minimum(nxt, prv))
    k = tf.where(mx > 0, tf.minimum(factor, mx / (mx - mn)), 0.0)
    return mx - k * (mx - own)
  return fn


def _hue_fn(delta):
  """x' = min + (max - min) * this channel's fraction at the shifted hue."""
  tf = _tf()

  def fn(own, nxt, prv):
    mx = tf.maximum(own, tf.maximum(nxt, prv))
    mn = tf.minimum(own, tf.minimum(nxt, prv))
    rng = mx - mn
    d = _hue_distance(own, nxt, prv, mx, rng, delta)
    return mn + rng * tf.clip_by_value(2.0 - d, 0.0, 1.0)
  return fn


def _hue_saturation_fn(delta, factor):
  """Hue then saturation (or saturation then hue: they commute, as hue keeps max and
  min) in one pass: x' = max - min(factor * (max - min), max) * (1 - fraction)."""
  tf = _tf()

  def fn(own, nxt, prv):
    mx = tf.maximum(own, tf.maximum(nxt, prv))
    rng = mx - tf.minimum(own, tf.minimum(nxt, prv))
    d = _hue_distance(own, nxt, prv, mx, rng, delta)
    chroma = tf.where(mx > 0, tf.minimum(factor * rng, mx), 0.0)
    return mx - chroma * tf.clip_by_value(d - 1.0, 0.0, 1.0)
  return fn


def adjust_saturation(image, factor, jit: bool = False):
  """tf.image.adjust_saturation for a float [h, w, 3] image."""
  image = _tf().convert_to_tensor(image, _tf().float32)
  return _pass(image, 0.0, None, factor, False, jit)


def adjust_hue(image, delta, jit: bool = False):
  """tf.image.adjust_hue for a float [h, w, 3] image (delta in turns)."""
  image = _tf().convert_to_tensor(image, _tf().float32)
  return _pass(image, 0.0, delta, None, False, jit)


def adjust_hue_saturation(image, delta, factor, jit: bool = False):
  """adjust_saturation(adjust_hue(image, delta), factor) in one pass."""
  image = _tf().convert_to_tensor(image, _tf().float32)
  return _pass(image, 0.0, delta, factor, False, jit)


def _flat_pass(hue: bool, saturation: bool, clip: bool):
  """fn(flat, add, hue delta, saturation factor): one fused pass, + add (a brightness
  before it), then hue and / or saturation, then the final clip to [0, 255] if `clip`."""
  tf = _tf()

  def run(flat, add, delta, factor):
    if hue and saturation:
      fn = _hue_saturation_fn(delta, factor)
    elif hue:
      fn = _hue_fn(delta)
    else:
      fn = _saturation_fn(factor)
    if clip:
      fn = lambda *x, fn=fn: tf.clip_by_value(fn(*x), 0.0, 255.0)
    return _per_element(flat + add, fn)
  return run


# Compile the passes (colour, PCA lighting) with XLA, one vectorised loop each, traced
# once per pass and image shape; False runs the colour math as TF ops (slower than TF's
# own kernels) and PCA lighting with TF's ops.
COLOR_JIT = True
_JITTED = {}


def _compiled(key, fn):
  """`fn` as one XLA-compiled TF function, made once per `key`."""
  if key not in _JITTED:
    _JITTED[key] = _tf().function(fn, jit_compile=True, autograph=False)
  return _JITTED[key]


# TensorFlow's XLA reads the same XLA_FLAGS as JAX's and aborts the process on a flag it
# does not know (JAX's XLA is newer). The fused ops compile only when every flag set is
# one of these, known to both; otherwise TF's own colour ops run (`inception_color_tf`).
TF_XLA_SAFE_FLAGS = ("--xla_force_host_platform_device_count",
                     "--xla_cpu_multi_thread_eigen",  # CNN_JAX_CPU_DEVICES sets it
                     "--xla_cpu_experimental_ynn_fusion_type",
                     "--xla_backend_optimization_level")


def tf_xla_usable(xla_flags: str | None = None) -> bool:
  """Whether TF's XLA may compile here: XLA_FLAGS holds only `TF_XLA_SAFE_FLAGS`."""
  import os
  flags = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
  return all(f.split("=")[0] in TF_XLA_SAFE_FLAGS for f in flags.split())


def _pass(image, add, hue, saturation, clip: bool, jit: bool):
  tf = _tf()
  mode = (hue is not None, saturation is not None, clip)
  fn = _flat_pass(*mode)
  if jit:
    fn = _compiled(mode, fn)
  scalar = lambda x: tf.convert_to_tensor(0.0 if x is None else x, tf.float32)
  out = fn(tf.reshape(image, [-1]), scalar(add), scalar(hue), scalar(saturation))
  return tf.reshape(out, tf.shape(image))


def inception_color(image, rng_seed, jit: bool | None = None, normalize=None):
  """Inception's colour distortion (TF-slim `distort_color`, see `inception_color_tf`)
  as fused float math on the [0, 255] image: the same factors and order for the same
  seed, the same result as the TF ops up to float rounding. Adjacent ops are merged, as
  hue commutes with brightness and with saturation: bshc = (b, h, s), c; sbch = s, c, b,
  h; chbs = c, b, (h, s); hscb = (h, s), c, b, the parenthesised ones in one XLA pass.
  Contrast is TF's AdjustContrastv2 kernel: one vectorised pass already (an XLA mean
  over the image costs ~5x more). With `normalize` = (mean, std) the result is
  normalised; where the orders end in a clip after the contrast (bshc, hscb), the clip
  (with hscb's brightness) and the normalisation are one XLA pass."""
  tf = _tf()
  if jit is None:
    if not tf_xla_usable():  # TF's XLA could abort on a JAX-only flag: TF's own ops
      return normalized(inception_color_tf(image, rng_seed), normalize)
    jit = COLOR_JIT
  image = tf.convert_to_tensor(image, tf.float32)
  order, brightness, saturation, hue, contrast = _color_factors(rng_seed)
  b = 255.0 * brightness
  con = lambda x: tf.image.adjust_contrast(x, contrast)
  p = lambda x, add=0.0, h=None, s=None, clip=False: _pass(x, add, h, s, clip, jit)
  norm = lambda x: normalized(x, normalize)
  if normalize is not None and jit:
    finish = lambda x, add=0.0: _clip_and_normalize(x, tf.fill([3], add), normalize, True)
  else:
    finish = lambda x, add=None: norm(clip_pixels(x if add is None else x + add))
  branches = [
      lambda: finish(con(p(image, b, hue, saturation))),
      lambda: norm(p(con(p(image, s=saturation)), b, h=hue, clip=True)),
      lambda: norm(p(con(image), b, h=hue, s=saturation, clip=True)),
      lambda: finish(con(p(image, h=hue, s=saturation)), b),
  ]
  out = tf.switch_case(order, branches)
  out.set_shape(image.shape)
  return out


def scaled(value: int, size: int) -> int:
  """A pixel constant of the 224-pixel recipes, scaled to `size` (exact at 224)."""
  return int(round(value * size / 224)) if size not in (224, 227) else value


# The training recipes: (image_bytes, rng_seed, size, method, crop_fraction) -> image in
# [0, 255], or normalised with normalize=(mean, std), the last pass doing it where it can.
def alexnet(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875,
            normalize=None, **_):
  crop, f, light = _seeds(rng_seed, 3)
  image = decode_and_alexnet_crop(image_bytes, crop, size, scaled(256, size), method)
  return pca_lighting(flip(image, f), light, sigma=0.1, normalize=normalize)


def vgg_scale_jitter(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875,
                     normalize=None, **_):
  # VGG: S ~ U[256, 512], random 224 crop, flip, AlexNet's RGB colour shift (Section 3.1).
  crop, f, light = _seeds(rng_seed, 3)
  image = decode_and_scale_crop(image_bytes, crop, size,
                                (scaled(256, size), scaled(512, size)), method)
  return pca_lighting(flip(image, f), light, sigma=0.1, normalize=normalize)


def vgg_fixed_scale(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875,
                    normalize=None, **_):
  # VGG with a fixed training scale S = 256 (Section 3.1; Table 3's single-scale rows).
  crop, f, light = _seeds(rng_seed, 3)
  image = decode_and_scale_crop(image_bytes, crop, size,
                                (scaled(256, size), scaled(256, size)), method)
  return pca_lighting(flip(image, f), light, sigma=0.1, normalize=normalize)


def resnet_scale(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875,
                 normalize=None, **_):
  # ResNet: short side ~ U[256, 480], random 224 crop, flip, standard colour augmentation
  # of AlexNet (He et al. 2015, Section 3.4).
  crop, f, light = _seeds(rng_seed, 3)
  image = decode_and_scale_crop(image_bytes, crop, size,
                                (scaled(256, size), scaled(480, size)), method)
  return pca_lighting(flip(image, f), light, sigma=0.1, normalize=normalize)


def inception(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875,
              normalize=None, **_):
  crop, f, color = _seeds(rng_seed, 3)
  image = decode_and_inception_crop(image_bytes, crop, size, method=method,
                                    crop_fraction=crop_fraction)
  return inception_color(flip(image, f), color, normalize=normalize)


def inception_crop_flip(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875,
                        normalize=None):
  """The crop and flip EfficientNet applies before AutoAugment / RandAugment."""
  crop, f = _seeds(rng_seed, 2)
  image = decode_and_inception_crop(image_bytes, crop, size, method=method,
                                    crop_fraction=crop_fraction)
  return normalized(flip(image, f), normalize)


def center(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875,
           normalize=None, **_):
  del rng_seed
  return normalized(decode_and_center_crop(image_bytes, size, crop_fraction, method),
                     normalize)
