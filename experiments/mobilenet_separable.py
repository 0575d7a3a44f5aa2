"""Depthwise-separable convolutions and the width multiplier (Howard et al. 2017)

  python -m cnn_jax.sweep --config=experiments/mobilenet_separable.py \
      --workdir=experiments/results/mobilenet_separable            # CPU scale
  python -m cnn_jax.sweep --config=experiments/mobilenet_separable.py:imagenet --workdir=DIR

Claims: (Table 4) MobileNet with depthwise-separable convolutions against the same net
with full convolutions: 70.6% vs 71.7% ImageNet top-1 for 569M vs 4866M mult-adds, a
loss of about one point for 8-9x less compute; read as `no_gain` with a 2-point margin
(the full-convolution net is not better by more than 2 points). (Table 6) the width
multiplier trades accuracy for compute smoothly: alpha 1.0 / 0.75 / 0.5 / 0.25 gives
70.6 / 68.4 / 63.7 / 50.6% top-1 at 569 / 325 / 149 / 41M mult-adds; read as each halving
of alpha (1 -> 0.5 -> 0.25) being worse. The plot is test error against GMACs.

CPU scale (the default) and what it changes (configs/mobilenet.py cpu_study): Fashion-MNIST
resized to 32 px (a 1x1 last map); every width halved, so the scale's alpha = 1.0 is the
registry's width_multiplier 0.5 and alpha 0.75 / 0.5 / 0.25 are 0.375 / 0.25 / 0.125
(with MobileNet's floor of 8 channels, which the smallest net hits in its first layers);
the full-convolution net (model_kwargs.separable=False) at the scale's alpha 1.0; batch
64, 300 steps (0.32 epoch), SGD momentum 0.9, learning rate 0.1, cosine decay, weight
decay 4e-5; no augmentation; 3 seeds.

imagenet: Tables 4 and 6 on TFDS imagenet2012 with configs/mobilenet.py's recipe
(RMSProp, 224 px): alpha 1.0 / 0.75 / 0.5 / 0.25 and the full-convolution net.
"""

from configs import common
from configs import mobilenet as mobilenet_config


def _scale(arg) -> str:
  return common.study_scale(arg, "mobilenet_separable")


def _base_width(arg) -> float:
  return 1.0 if _scale(arg) == "imagenet" else 0.5


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    return mobilenet_config.recipe("mobilenet_v1")
  return mobilenet_config.cpu_study("mobilenet_v1", steps=300)


def get_sweep(arg: str = ""):
  base = _base_width(arg)
  cells = [{"name": f"alpha{alpha:g}", "model_kwargs.width_multiplier": base * alpha}
           for alpha in (1.0, 0.75, 0.5, 0.25)]
  return cells + [{"name": "full_conv", "model_kwargs.width_multiplier": base,
                   "model_kwargs.separable": False}]


def get_claims(arg: str = ""):
  return [
      {"metric": "test_error", "variant": "full_conv", "baseline": "alpha1",
       "expect": "no_gain", "margin": 0.02,
       "text": "full convolutions are at most slightly better than depthwise-separable "
               "ones for ~8x the compute (Table 4: 71.7% vs 70.6% top-1)"},
      {"metric": "test_error", "variant": "alpha0.5", "baseline": "alpha1",
       "expect": "worse", "text": "alpha 0.5 is worse than 1.0 (Table 6: 63.7% vs 70.6%)"},
      {"metric": "test_error", "variant": "alpha0.25", "baseline": "alpha0.5",
       "expect": "worse", "text": "alpha 0.25 is worse than 0.5 (Table 6: 50.6% vs 63.7%)"},
  ]


def get_report(arg: str = ""):
  return {"plot": "test_error vs gmacs"}
