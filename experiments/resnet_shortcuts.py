"""ResNet shortcut options A, B and C (He et al. 2015, Section 3.3 and Table 3).

  python -m cnn_jax.sweep --config=experiments/resnet_shortcuts.py \
      --workdir=experiments/results/resnet_shortcuts               # CPU scale, ~17 min
  python -m cnn_jax.sweep --config=experiments/resnet_shortcuts.py:imagenet --workdir=DIR

Claim (Table 3, ResNet-34, 10-crop top-1 error): (A) zero-padding identity shortcuts
25.03%, (B) projections where the shape changes, identity elsewhere 24.52%, (C) projections
everywhere 24.19%: "B is slightly better than A ... C is marginally better than B", and
the differences are small ("projection shortcuts are not essential").

CPU scale (the default) and what it changes: Fashion-MNIST at 28 px instead of ImageNet;
the CIFAR ResNet-20 of Section 4.2 (resnet20: 3x3 stem, three stages) at half width
(8/16/32 channels) instead of ResNet-34; 240 steps of batch 128 (~0.5 epoch), SGD momentum
0.9, learning rate 0.1 with a cosine decay, weight decay 1e-4; no augmentation; 3 seeds.
Option A is the registry's resnet20; B and C set model_kwargs.shortcut to 'projection'
and 'projection_all'.

imagenet: Table 3's comparison on TFDS imagenet2012: ResNet-34 with each option, the
paper's recipe (configs/resnet.py:resnet34,paper) and 10-crop evaluation.
"""

from configs import common
from configs import resnet as resnet_config

OPTIONS = {"A": "zero_pad", "B": "projection", "C": "projection_all"}


def _scale(arg) -> str:
  return common.study_scale(arg, "resnet_shortcuts")


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    c = resnet_config.recipe("resnet34", paper=True)
    c.eval_protocol = "ten_crop"
    return c
  return resnet_config.cpu_study("resnet20", steps=240)


def get_sweep(arg: str = ""):
  return [{"name": f"option_{o}", "model_kwargs.shortcut": kind}
          for o, kind in OPTIONS.items()]


def get_claims(arg: str = ""):
  return [
      {"metric": "test_error", "variant": "option_B", "baseline": "option_A",
       "expect": "better", "text": "B slightly better than A (Table 3: 24.52% vs 25.03%)"},
      {"metric": "test_error", "variant": "option_C", "baseline": "option_B",
       "expect": "better", "text": "C marginally better than B (24.19% vs 24.52%)"},
  ]
