"""DenseNet against ResNet at fewer parameters (Huang et al. 2017)

  python -m cnn_jax.sweep --config=experiments/densenet_efficiency.py \
      --workdir=experiments/results/densenet_efficiency            # CPU scale
  python -m cnn_jax.sweep --config=experiments/densenet_efficiency.py:imagenet --workdir=DIR

Claim (Section 4.4, Figure 3, ImageNet): "DenseNets perform on par with the state-of-the-
art ResNets, whilst requiring significantly fewer parameters and computation": e.g.
DenseNet-201 (20M parameters) has about the validation error of ResNet-101 (more than
40M), and DenseNet-121 (8M) about that of ResNet-50 (25M). Read as `no_gain`: the larger
ResNet's test error is not lower than the smaller DenseNet's by more than 1 point.
The plot is test error against parameters, one point per net.

CPU scale (the default) and what it changes: Fashion-MNIST resized to 56 px (the ImageNet
stems' 4x reduction leaves 14x14 for the first block, as 224 px leaves 56x56);
DenseNet-121's blocks (6, 12, 24, 16) with growth rate k = 8 instead of 32 (453k
parameters at 10 classes) against ResNet-18 and ResNet-34 at base width 16 instead of 64
(702k and 1.33M); batch 64, 300 steps (0.32 epoch), SGD Nesterov momentum 0.9, learning
rate 0.1 with a cosine decay, weight decay 1e-4; no augmentation; 3 seeds. Both families
keep their ImageNet stems (7x7/2 conv, 3x3/2 max-pool). Equal steps, not equal compute:
the DenseNet is the slowest per step of the three on a CPU.

imagenet: Figure 3's pairs on TFDS imagenet2012 with the torchvision recipe of
configs/densenet.py (90 epochs, SGD Nesterov 0.1 /10 at 30 and 60, batch 256) for all four
nets: DenseNet-121 and -169 against ResNet-50 and -101.
"""

from configs import common
from configs import densenet as densenet_config


def _scale(arg) -> str:
  return common.study_scale(arg, "densenet_efficiency")


def get_config(arg: str = ""):
  c = densenet_config.recipe("densenet121")
  c.model_kwargs = {}
  if _scale(arg) == "imagenet":
    return c
  c = common.cpu_study(c, steps=300, batch_size=64, evals=2, log_every=25, image_size=56)
  c.lr_schedule = "cosine"
  c.lr_decay_epochs = ()
  c.warmup_epochs = 0.0
  return c


def get_sweep(arg: str = ""):
  if _scale(arg) == "imagenet":
    return [{"name": n, "model": n} for n in
            ("densenet121", "densenet169", "resnet50", "resnet101")]
  return [{"name": "densenet121_k8", "model": "densenet121", "model_kwargs.growth_rate": 8},
          {"name": "resnet18_w16", "model": "resnet18", "model_kwargs.width": 16},
          {"name": "resnet34_w16", "model": "resnet34", "model_kwargs.width": 16}]


def get_claims(arg: str = ""):
  if _scale(arg) == "imagenet":
    pairs = (("resnet50", "densenet121"), ("resnet101", "densenet169"))
  else:
    pairs = (("resnet18_w16", "densenet121_k8"), ("resnet34_w16", "densenet121_k8"))
  return [{"metric": "test_error", "variant": resnet, "baseline": densenet,
           "expect": "no_gain", "margin": 0.01,
           "text": f"{resnet}, with more parameters, is no better than {densenet} "
                   f"(Figure 3)"} for resnet, densenet in pairs]


def get_report(arg: str = ""):
  return {"plot": "test_error vs params"}
