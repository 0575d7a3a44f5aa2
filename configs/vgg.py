"""VGG configurations A, A-LRN, B, C, D, E (Simonyan & Zisserman 2014, Table 1) on ImageNet.

  python -m cnn_jax.main --config=configs/vgg.py:vgg16 --workdir=workdirs/vgg16
  python -m cnn_jax.main --config=configs/vgg.py:vgg11_lrn --workdir=workdirs/vgg11_lrn

The argument picks the model: vgg11 (A, default), vgg11_lrn (A-LRN), vgg13 (B),
vgg16_conv1 (C), vgg16 (D), vgg19 (E), or a BatchNorm variant vgg11_bn .. vgg19_bn.
Smoke run (any machine): add --config.dataset=fashion_mnist --config.augment=none
--config.eval_protocol=center --config.num_train_steps=20 --config.batch_size=16
--config.eval_max_examples=64; the 28 px images are resized to 224.

Recipe (Section 3.1): SGD, batch 256, momentum 0.9, weight decay 5e-4 (the 'l2' mode),
dropout 0.5 on fc6/fc7 (model default), learning rate 1e-2 divided by 10 when the
validation accuracy stopped improving, three times, stopped after 370K iterations (74
epochs); the epochs 25/50/65 here are a fixed stand-in for the plateaus. Initialisation:
A from N(0, 1e-2) with zero biases (weight_init='paper'); B-E started from A's first
four convs and three FC layers, or, as the footnote found equivalent, from Glorot
initialisation (weight_init='glorot', used here; start from A with --config.init_from).
Augmentation: random 224 crop of the isotropically rescaled image, flip, AlexNet's RGB
colour shift; training scale S fixed at 256 or 384, or jittered in [256, 512]
('vgg_scale_jitter', used here: Table 3's best for C-E; A, A-LRN and B were trained at
S=256 only). Evaluation (Section 3.2) is dense: the FC layers run as convolutions over the
whole image rescaled to Q and its flip, class scores averaged (model_kwargs.dense_eval,
set here; cnn_jax/data/eval_protocols.py 'dense').
Reported top-1 (Table 3, one net, dense evaluation at Q = S = 256): A 70.4, A-LRN 70.3,
B 71.3, C 71.9, D 73.0, E 72.7.

The BatchNorm variants are torchvision's; they use its reference recipe with the default
learning rate 0.1 (torchvision top-1: vgg11_bn 70.4, vgg13_bn 71.6, vgg16_bn 73.4,
vgg19_bn 74.2).

Not run end-to-end here (no ImageNet on this machine).
"""

from configs import alexnet, default

VARIANTS = ("vgg11", "vgg11_lrn", "vgg13", "vgg16_conv1", "vgg16", "vgg19",
            "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")


def get_config(arg: str = "vgg11"):
  if arg not in VARIANTS:
    raise ValueError(f"unknown VGG variant {arg!r}; choose one of {', '.join(VARIANTS)}")
  c = default.get_config()
  c.model = arg
  c.dataset = "imagenet2012"
  c.image_size = 224
  c.eval_batch_size = 1000
  c.label_smoothing = 0.0
  if arg.endswith("_bn"):
    c.model_kwargs = {"weight_init": "he", "dense_eval": True}
    alexnet.torchvision_recipe(c)
    c.learning_rate = 0.1  # torchvision's default: these include BatchNorm
    return c
  # Section 3.1: net A from N(0, 0.01); the deeper nets from Glorot (footnote).
  init = "paper" if arg in ("vgg11", "vgg11_lrn") else "glorot"
  c.model_kwargs = {"weight_init": init, "dense_eval": True}
  c.augment = "vgg_scale_jitter"
  c.batch_size = 256
  c.num_epochs = 74.0
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.learning_rate = 0.01
  c.lr_schedule = "step"
  c.lr_decay_epochs = (25, 50, 65)
  c.lr_decay_factor = 0.1
  c.weight_decay = 5e-4
  c.weight_decay_mode = "l2"
  c.eval_protocol, c.eval_scales = "dense", (256, 384, 512)  # Table 4: multi-scale Q
  return c
