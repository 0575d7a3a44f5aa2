"""VGG depth: A (11 layers), B (13), D (16), E (19), and C vs D (Simonyan & Zisserman 2014).

  python -m cnn_jax.sweep --config=experiments/vgg_depth.py \
      --workdir=experiments/results/vgg_depth                      # CPU scale, ~25 min
  python -m cnn_jax.sweep --config=experiments/vgg_depth.py:imagenet --workdir=DIR

Claims (Section 4.1, Table 3, single-scale evaluation, S = Q = 256): "the classification
error decreases with the increased ConvNet depth: from 11 layers in A to 19 layers in E"
-- top-1 error A 29.6%, B 28.7%, D 27.0%, E 27.3% -- with "the error rate of our
architecture saturated when the depth reached 19 layers" (E no better than D); and C
(three of D's 3x3 convs replaced by 1x1) is worse than D at the same depth (28.1% vs
27.0%): spatial context matters.

CPU scale (the default) and what it changes (configs/vgg.py cpu_study): Fashion-MNIST
resized to 32 px; conv widths x0.25; fc6/fc7 of 256 units on a 1x1 map; batch 128; 200
steps (~0.43 epoch) with a cosine decay; no augmentation; 3 seeds; and **BatchNorm after
every conv with He initialisation** (model_kwargs.batch_norm, torchvision's vgg*_bn),
learning rate 0.05. The paper has no BatchNorm: without it the deeper nets do not leave
chance level in the steps this machine affords (measured: VGG-E (19) at learning rates
0.01 and 0.05 stayed at 10% train accuracy for 100 steps, while VGG-A reached 42% at
0.05), and the paper itself needed pre-training from A or Glorot's initialisation to
train them at all. So the comparison is of depth with BatchNorm, early in training.
`no_gain` of E over D: E's test error not lower than D's by more than 0.5 points.

imagenet: Table 3's protocol on TFDS imagenet2012, no BatchNorm: configs/vgg.py's recipe
(batch 256, SGD 0.01 /10 at plateaus, weight decay 5e-4, dropout 0.5, 74 epochs, Glorot
for B-E), training scale S fixed at 256 and dense evaluation at the single scale Q = 256.
"""

from configs import common
from configs import vgg as vgg_config

NETS = {"A": "vgg11", "B": "vgg13", "C": "vgg16_conv1", "D": "vgg16", "E": "vgg19"}


def _scale(arg) -> str:
  return common.study_scale(arg, "vgg_depth")


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    return vgg_config.table3("vgg16")
  c = vgg_config.cpu_study(steps=200)
  c.model_kwargs.batch_norm = True
  c.model_kwargs.weight_init = "he"
  c.learning_rate = 0.05
  return c


def get_sweep(arg: str = ""):
  return [{"name": f"{name}_{column}", "model": name} for column, name in NETS.items()]


def get_claims(arg: str = ""):
  a, b, c, d, e = (f"{name}_{col}" for col, name in NETS.items())
  return [
      {"metric": "test_error", "variant": b, "baseline": a, "expect": "better",
       "text": "B (13 layers) beats A (11): 28.7% vs 29.6%"},
      {"metric": "test_error", "variant": d, "baseline": b, "expect": "better",
       "text": "D (16) beats B (13): 27.0% vs 28.7%"},
      {"metric": "test_error", "variant": e, "baseline": d, "expect": "no_gain",
       "margin": 0.005, "text": "E (19) is no better than D: 27.3% vs 27.0% (saturation)"},
      {"metric": "test_error", "variant": d, "baseline": c, "expect": "better",
       "text": "3x3 beats 1x1 at equal depth: D 27.0% vs C 28.1%"},
  ]
