"""ZFNet's first layers against AlexNet's (Zeiler & Fergus 2013)

  python -m cnn_jax.sweep --config=experiments/zfnet_first_layer.py \
      --workdir=experiments/results/zfnet_first_layer              # CPU scale
  python -m cnn_jax.sweep --config=experiments/zfnet_first_layer.py:imagenet --workdir=DIR

Claim (Section 4.1, Table 2): visualising AlexNet's first layers showed dead and aliased
filters, so conv1 became 7x7 with stride 2 instead of 11x11 with stride 4, and conv2 got
stride 2; the resulting net (Figure 3) has validation top-1 / top-5 error 38.4 / 16.5%
against 40.5 / 18.1% for the authors' replication of AlexNet (one net each). The ZFNet
cell here is the registry's `zfnet` (Figure 3: ungrouped convs, contrast normalisation),
the AlexNet cell the registry's `alexnet` (two towers, LRN), so, as in Table 2, the
first-layer change comes with the other differences of Figure 3.

CPU scale (the default) and what it changes (configs/alexnet.py cpu_study): Fashion-MNIST
resized to 100 px, at which both nets leave a 2x2 map before fc6 (fc_window=2, as 224 /
227 px leave 6x6); conv widths x0.25; fc6/fc7 of 256 units; batch 128; 300 steps (~0.64
epoch) with a cosine decay, learning rate 0.05, SGD momentum 0.9, weight decay 5e-4,
dropout 0.5; no augmentation; Glorot initialisation. The 1-channel 28 px images have
little fine detail for a 7x7/2 first layer to keep that an 11x11/4 one loses, so the
CPU scale can show at most part of the effect. 3 seeds.

imagenet: Table 2's comparison with ZFNet's recipe (configs/zfnet.py) for both nets,
AlexNet at its 227 px input, 10-crop evaluation.
"""

from configs import alexnet as alexnet_config
from configs import common
from configs import zfnet as zfnet_config


def _scale(arg) -> str:
  return common.study_scale(arg, "zfnet_first_layer")


def get_config(arg: str = ""):
  if _scale(arg) == "imagenet":
    return zfnet_config.recipe()
  c = alexnet_config.cpu_study(steps=300, name="zfnet")
  c.learning_rate = 0.05
  return c


def get_sweep(arg: str = ""):
  alexnet = {"name": "alexnet", "model": "alexnet"}
  if _scale(arg) == "imagenet":
    alexnet["image_size"] = 227
  return [alexnet, {"name": "zfnet", "model": "zfnet"}]


def get_claims(arg: str = ""):
  return [{"metric": "test_error", "variant": "zfnet", "baseline": "alexnet",
           "expect": "better",
           "text": "the 7x7/2 first layer net beats AlexNet (Table 2: 38.4% vs 40.5% top-1 "
                   "error)"}]
