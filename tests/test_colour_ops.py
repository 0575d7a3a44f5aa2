"""Inception's colour distortion as fused float math (cnn_jax.data.imagenet_preprocess):
each op against TF's image op with the same fixed factor, on images with values out of
[0, 1] (the intermediate orders produce them), grey pixels and ties; the whole distortion
against the TF-op version for the same seeds, deterministic, in range, shape kept."""

import numpy as np
import pytest

SATURATIONS = [0.5, 0.77, 1.0, 1.3, 1.5]
HUES = [-0.2, -0.11, -0.03, 0.0, 0.07, 0.2, 0.5, -1.0]


def _image(seed=0, h=23, w=17, lo=-0.3, hi=1.3):
  """Random RGB in [lo, hi], with rows of special pixels: greys (all channels equal,
  including 0 and negative), two channels tied for the max or the min, a pixel with all
  channels below 0 and one with the max exactly 0."""
  rng = np.random.default_rng(seed)
  image = rng.uniform(lo, hi, (h, w, 3)).astype(np.float32)
  grey = rng.uniform(lo, hi, (w,)).astype(np.float32)
  image[0] = grey[:, None]
  image[1, :, 0] = image[1, :, 1]  # r == g
  image[2, :, 1] = image[2, :, 2]  # g == b
  image[3, :, 2] = image[3, :, 0]  # b == r
  image[4, :3] = [[0, 0, 0], [-0.2, -0.1, -0.05], [0.0, -0.1, -0.2]]
  image[4, 3:6] = [[1, 1, 1], [1.2, 0.5, 1.2], [0.3, 0.3, 0.9]]
  return image


@pytest.fixture(scope="module")
def tf():
  import tensorflow as tf
  return tf


@pytest.fixture(scope="module")
def ip():
  from cnn_jax.data import imagenet_preprocess as ip
  return ip


def _close(a, b, atol=1e-5):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=atol)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("factor", SATURATIONS)
def test_saturation_matches_tf(tf, ip, factor, jit):
  x = _image(3)
  _close(ip.adjust_saturation(x, factor, jit=jit), tf.image.adjust_saturation(x, factor))


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("delta", HUES)
def test_hue_matches_tf(tf, ip, delta, jit):
  x = _image(4)
  _close(ip.adjust_hue(x, delta, jit=jit), tf.image.adjust_hue(x, delta))


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("delta,factor", [(-0.2, 0.5), (-0.04, 1.5), (0.13, 0.8), (0.2, 1.2)])
def test_hue_and_saturation_in_one_pass_match_either_order(tf, ip, delta, factor, jit):
  x = _image(5)
  fused = ip.adjust_hue_saturation(x, delta, factor, jit=jit)
  _close(fused, tf.image.adjust_saturation(tf.image.adjust_hue(x, delta), factor))
  _close(fused, tf.image.adjust_hue(tf.image.adjust_saturation(x, factor), delta))


def test_tf_quirks_are_kept(tf, ip):
  """A pixel with max <= 0 comes out grey at its max (TF's saturation takes S = 0 there);
  hue keeps max and min of out-of-range pixels; saturation clamps S at 1 (a channel that
  would cross below 0 stops at 0 when the max is positive)."""
  x = np.array([[[-0.2, -0.1, -0.05], [0.0, -0.1, -0.2], [1.2, 0.4, -0.1], [0.5, 0.4, 0.1]]],
               np.float32)
  sat = ip.adjust_saturation(x, 1.4).numpy()
  _close(sat[0, 0], [-0.05] * 3)
  _close(sat[0, 1], [0.0] * 3)
  _close(sat[0, 2, 2], 0.0)
  _close(sat, tf.image.adjust_saturation(x, 1.4))
  hue = ip.adjust_hue(x, 0.3).numpy()
  _close(np.sort(hue[0, 2])[[0, 2]], [-0.1, 1.2])
  _close(hue, tf.image.adjust_hue(x, 0.3))


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 2, 3), (2, 1, 3)])
def test_one_and_two_pixel_images(tf, ip, shape, jit):
  """The first and last pixel read their neighbours from the padding's side of the flat
  array: each must still see its own pixel's channels."""
  x = np.array([[0.9, 0.2, 0.5], [-0.1, 0.4, 1.2]], np.float32)[:shape[0] * shape[1]]
  x = x.reshape(shape)
  _close(ip.adjust_hue(x, 0.13, jit=jit), tf.image.adjust_hue(x, 0.13))
  _close(ip.adjust_saturation(x, 1.4, jit=jit), tf.image.adjust_saturation(x, 1.4))
  _close(ip.adjust_hue_saturation(x, -0.17, 0.6, jit=jit),
         tf.image.adjust_saturation(tf.image.adjust_hue(x, -0.17), 0.6))


def _orders(tf, ip, seeds):
  return [int(ip._color_factors(tf.constant(s))[0]) for s in seeds]


def test_distortion_matches_the_tf_ops_for_every_order(tf, ip):
  """The same seeds draw the same factors and order as the TF-op version (TF-slim's
  recipe), and the results agree to float rounding in every one of the four orders."""
  x = tf.constant(np.random.default_rng(6).uniform(0, 255, (40, 36, 3)).astype(np.float32))
  seeds = [[7, i] for i in range(16)]
  assert set(_orders(tf, ip, seeds)) == {0, 1, 2, 3}
  for seed in seeds:
    ref = ip.inception_color_tf(x, tf.constant(seed))
    for jit in (True, False):
      _close(ip.inception_color(x, tf.constant(seed), jit=jit), ref, atol=2e-3)


def test_distortion_deterministic_in_range_and_shape_kept(tf, ip):
  x = tf.constant(np.random.default_rng(8).uniform(0, 255, (32, 24, 3)).astype(np.float32))
  outs = [ip.inception_color(x, tf.constant([1, i])).numpy() for i in range(8)]
  again = [ip.inception_color(x, tf.constant([1, i])).numpy() for i in range(8)]
  for out, out2 in zip(outs, again):
    assert out.shape == (32, 24, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    np.testing.assert_array_equal(out, out2)
  assert all(not np.array_equal(outs[0], o) for o in outs[1:])


def test_distortion_in_a_dataset_map(tf, ip):
  """Traced inside tf.data (graph mode, XLA passes called from the map function): static
  shape kept, same values as eager, deterministic."""
  x = np.random.default_rng(9).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
  ds = tf.data.Dataset.from_tensor_slices(x).enumerate().map(
      lambda i, im: ip.inception_color(im, tf.stack([tf.constant(3, tf.int64), i])))
  assert ds.element_spec.shape == (16, 16, 3)
  first = np.stack(list(ds.as_numpy_iterator()))
  np.testing.assert_array_equal(first, np.stack(list(ds.as_numpy_iterator())))
  eager = np.stack([ip.inception_color(x[i], tf.constant([3, i], tf.int64)).numpy()
                    for i in range(4)])
  _close(first, eager, atol=1e-3)


def test_fused_ops_compile_only_with_flags_tf_knows(tf, ip, monkeypatch):
  """TF's XLA aborts on an XLA_FLAGS entry it does not know (a newer, JAX-only flag): the
  fused passes compile only when every flag is known to both, else TF's own ops run."""
  assert ip.tf_xla_usable("")
  assert ip.tf_xla_usable("--xla_force_host_platform_device_count=8 "
                          "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution")
  assert not ip.tf_xla_usable("--xla_gpu_enable_latency_hiding_scheduler=true")
  from cnn_jax import platform  # CNN_JAX_CPU_DEVICES's flags keep the fused passes
  assert ip.tf_xla_usable(platform.cpu_device_flags("2", platform.YNN_FLAG))
  monkeypatch.setenv("XLA_FLAGS", "--xla_some_jax_only_flag=1")
  x = tf.constant(np.random.default_rng(3).uniform(0, 255, (8, 8, 3)).astype(np.float32))
  seed = tf.constant([5, 6])
  np.testing.assert_array_equal(ip.inception_color(x, seed).numpy(),
                                ip.inception_color_tf(x, seed).numpy())


@pytest.mark.parametrize("jit", [False, True])
def test_pca_lighting_adds_alexnets_shift_and_clips(tf, ip, jit):
  """eigvec @ (alpha * eigval) * 255 with alpha ~ N(0, 0.1) drawn from the seed, added to
  every pixel, then clipped to [0, 255]; the XLA pass and TF's ops agree."""
  rng = np.random.default_rng(10)
  x = rng.uniform(0, 255, (20, 30, 3)).astype(np.float32)
  x[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 254, 128]]
  for i in range(6):
    seed = tf.constant([4, i])
    alpha = tf.random.stateless_normal([3], seed, stddev=0.1).numpy()
    shift = 255.0 * np.asarray(ip.PCA_EIGVEC) @ (alpha * np.asarray(ip.PCA_EIGVAL))
    out = ip.pca_lighting(tf.constant(x), seed, jit=jit).numpy()
    _close(out, np.clip(x + shift, 0.0, 255.0), atol=1e-4)
    _close(out, ip.pca_lighting(tf.constant(x), seed, jit=not jit), atol=1e-4)
