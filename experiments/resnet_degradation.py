"""Plain vs residual networks over depth: the degradation problem (He et al. 2015).

  python -m cnn_jax.sweep --config=experiments/resnet_degradation.py \
      --workdir=experiments/results/resnet_degradation            # CPU scale, ~35 min
  python -m cnn_jax.sweep --config=experiments/resnet_degradation.py:imagenet \
      --workdir=gs://.../resnet_degradation                       # the paper's Fig. 4

Claim (Section 4.1-4.2, Fig. 4 and 6): a plain network (the same layers, no shortcuts)
gets a *higher training error* as it gets deeper (CIFAR-10: plain-56 above plain-20 all
through training; ImageNet: plain-34 28.54% vs plain-18 27.94% top-1 error), while the
residual network gets better with depth (CIFAR-10 ResNet-20 / 56: 8.75% / 6.97% test
error; ImageNet ResNet-18 / 34: 27.88% / 25.03%), and the deep residual net trains far
better than its plain twin.

CPU scale (the default) and what it changes, all forced by the 2-core budget:
  * Fashion-MNIST at its native 28 px instead of CIFAR-10 (the only image set offline);
    no augmentation (the paper pads 4 px, crops 32 and flips).
  * The CIFAR ResNets of Section 4.2 (3x3 stem, three stages, option A shortcuts; the
    registry's resnet20 / resnet56 and plain20 / plain56) at HALF width: 8/16/32
    channels instead of 16/32/64 (model_kwargs.width=8).
  * Depths 20 and 56 only (the paper also runs 32, 44, 110).
  * 240 steps of batch 128 (~0.5 epoch; the paper trains 64k steps) with SGD momentum
    0.9, learning rate 0.1, weight decay 1e-4 as in the paper, but a cosine decay
    instead of the paper's /10 at 32k and 48k steps; 3 seeds.
  So this shows the very start of training (where the paper's Fig. 6 curves already
  separate), not converged error.

imagenet: the paper's Fig. 4 / Table 2 comparison on TFDS imagenet2012: plain-18/34
and ResNet-18/34 with option A shortcuts, the paper's recipe (configs/resnet.py:...,paper:
batch 256, SGD 0.1 /10 at plateaus, weight decay 1e-4, scale augmentation) and 10-crop
evaluation. Needs a TPU/GPU machine (days on 8 GPUs in 2015).
"""

from configs import common
from configs import resnet as resnet_config

CPU_DEPTHS = (20, 56)




def _scale(arg) -> str:
  return common.study_scale(arg, "resnet_degradation")


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    c = resnet_config.recipe("resnet18", paper=True)
    c.eval_protocol = "ten_crop"  # Table 2 reports 10-crop testing
    return c
  return resnet_config.cpu_study("resnet20", steps=240)


def get_sweep(arg: str = ""):
  if _scale(arg) == "imagenet":
    return [{"name": f"{kind}{d}", "model": f"{kind}{d}", "model_kwargs.shortcut":
             "none" if kind == "plain" else "zero_pad"}
            for kind in ("plain", "resnet") for d in (18, 34)]
  return [{"name": f"{kind}{d}", "model": f"{kind}{d}"}
          for kind in ("plain", "resnet") for d in CPU_DEPTHS]


def get_claims(arg: str = ""):
  shallow, deep = (18, 34) if _scale(arg) == "imagenet" else CPU_DEPTHS
  return [
      {"metric": "train_error", "variant": f"plain{deep}", "baseline": f"plain{shallow}",
       "expect": "worse", "text": "plain nets: deeper has higher training error (Fig. 6)"},
      {"metric": "test_error", "variant": f"resnet{deep}", "baseline": f"resnet{shallow}",
       "expect": "better", "text": "residual nets: deeper is better (Table 6 / Table 2)"},
      {"metric": "train_error", "variant": f"resnet{deep}", "baseline": f"plain{deep}",
       "expect": "better", "text": "at equal depth the residual net trains better"},
  ]
