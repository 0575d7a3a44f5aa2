"""configs/: every family config's variants and flags load, the `smoke` configs pass
cnn_jax.main.check_config (traced with jax.eval_shape, nothing compiles), and
configs/common.parse_arg parses big_vision-style config strings with one-line errors."""

import importlib
import os

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from cnn_jax.main import check_config
from configs import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each family config and its default variant (get_config() without an argument).
FAMILIES = {"alexnet": "alexnet", "densenet": "densenet121", "efficientnet": "efficientnet_b0",
            "googlenet": "googlenet", "inception": "inception_v3",
            "mobilenet": "mobilenet_v1", "resnet": "resnet50", "vgg": "vgg11", "zfnet": "zfnet"}
# What common.smoke sets; everything else stays the family's.
SMOKE = {"dataset": "fashion_mnist", "augment": "none", "eval_protocol": "center",
         "num_train_steps": 20, "batch_size": 16, "eval_batch_size": 64,
         "eval_max_examples": 64, "warmup_epochs": 0.0, "dtype": "float32",
         "log_every_steps": 10, "checkpoint_every_steps": 1000, "extra_eval_datasets": (),
         "shuffle_buffer": 1000}


def module(family):
  return importlib.import_module(f"configs.{family}")


def all_variants():
  return [(f, v) for f in FAMILIES for v in module(f).VARIANTS]


def test_every_family_has_its_variants():
  for family, default in FAMILIES.items():
    assert default in module(family).VARIANTS


# --- (a) every variant and flag loads; smoke configs pass check_config -------------------

@pytest.mark.parametrize("family,variant", all_variants())
def test_variant_and_its_smoke_load(family, variant):
  get_config = module(family).get_config
  c = get_config(variant)
  assert c.model == variant.removesuffix("_option_a")
  assert c.dataset == "imagenet2012"
  smoke = get_config(f"{variant},smoke")
  assert smoke.to_dict() == common.smoke(get_config(variant)).to_dict()
  assert get_config(f"smoke,{variant}").to_dict() == smoke.to_dict()  # order is free
  for key, value in SMOKE.items():
    assert smoke[key] == value, key
  assert smoke.image_size == c.image_size  # the model's own input size
  assert smoke.get("eval_scales") is None
  assert smoke.model == c.model and smoke.model_kwargs.to_dict() == c.model_kwargs.to_dict()


@pytest.mark.parametrize("family", FAMILIES)
def test_default_argument(family):
  get_config = module(family).get_config
  default = FAMILIES[family]
  assert get_config().to_dict() == get_config(default).to_dict() == get_config("").to_dict()
  # `:smoke` alone is the default variant's smoke run.
  assert get_config("smoke").to_dict() == get_config(f"{default},smoke").to_dict()


# The default variants' smoke configs go through check_config in test_cli_smoke below;
# here every other variant's (together ~30 s on 2 cores).
@pytest.mark.parametrize("family,variant",
                         [(f, v) for f, v in all_variants() if v != FAMILIES[f]])
def test_smoke_config_passes_check_config(family, variant):
  check_config(module(family).get_config(f"{variant},smoke"))


def test_resnet_paper_flag():
  resnet = module("resnet")
  modern, paper = resnet.get_config("resnet50"), resnet.get_config("resnet50,paper")
  assert (modern.batch_size, modern.optimizer, modern.lr_schedule) == (1024, "nesterov", "cosine")
  assert (paper.batch_size, paper.learning_rate, paper.optimizer, paper.lr_schedule) == (
      256, 0.1, "sgd", "step")
  assert paper.lr_decay_epochs == (30, 60, 90) and paper.num_epochs == 120.0
  assert paper.augment == "resnet_scale" and paper.warmup_epochs == 0.0
  assert resnet.get_config("paper=true,resnet50").to_dict() == paper.to_dict()
  assert resnet.get_config("resnet50,paper=0").to_dict() == modern.to_dict()
  both = resnet.get_config("resnet18,paper,smoke")
  assert (both.optimizer, both.lr_schedule, both.batch_size) == ("sgd", "step", 16)
  check_config(both)
  option_a = resnet.get_config("resnet34_option_a,paper")
  assert option_a.model == "resnet34" and option_a.model_kwargs.shortcut == "zero_pad"


def test_fashion_mnist_smoke():
  fashion_mnist = module("fashion_mnist")
  assert fashion_mnist.get_config().to_dict() == fashion_mnist.get_config("").to_dict()
  c = fashion_mnist.get_config("smoke")
  assert (c.num_train_steps, c.batch_size, c.image_size) == (20, 16, 28)
  assert c.model_kwargs.to_dict() == fashion_mnist.get_config().model_kwargs.to_dict()
  check_config(c)
  with pytest.raises(ValueError, match="'resnet50'"):
    fashion_mnist.get_config("resnet50")


# --- (b) parse_arg ----------------------------------------------------------------------

VARIANTS = ("small", "base", "large")


def parse(arg, **kw):
  return common.parse_arg(arg, variants=VARIANTS, default_variant="base", family="Toy",
                          flag=False, steps=10, lr=0.1, name="x", **kw)


def one_line_error(arg, **kw):
  with pytest.raises(ValueError) as e:
    parse(arg, **kw)
  message = str(e.value)
  assert "\n" not in message
  return message


def test_parse_arg_defaults():
  for arg in ("", None, " , ,"):
    a = parse(arg)
    assert isinstance(a, ml_collections.ConfigDict)
    assert a.to_dict() == {"variant": "base", "flag": False, "steps": 10, "lr": 0.1,
                           "name": "x"}


def test_parse_arg_variant_and_keys():
  a = parse("large, steps=7 ,lr=1e-3,name=abc,flag=true")
  assert a.to_dict() == {"variant": "large", "flag": True, "steps": 7, "lr": 0.001,
                         "name": "abc"}
  assert type(a.steps) is int and type(a.lr) is float and type(a.flag) is bool
  assert parse("lr=2").lr == 2.0 and type(parse("lr=2").lr) is float
  assert parse("name=").name == ""
  assert parse("small,small").variant == "small"


@pytest.mark.parametrize("value,expected", [("true", True), ("True", True), ("1", True),
                                            ("false", False), ("FALSE", False), ("0", False)])
def test_parse_arg_bool_values(value, expected):
  assert parse(f"flag={value}").flag is expected


def test_parse_arg_bare_bool_flag():
  assert parse("flag").flag is True
  assert parse("small,flag").to_dict()["variant"] == "small"


def test_parse_arg_without_variants():
  a = common.parse_arg("smoke", smoke=False, n=3)
  assert a.to_dict() == {"variant": None, "smoke": True, "n": 3}
  assert common.parse_arg(None).to_dict() == {"variant": None}
  with pytest.raises(ValueError, match="this config takes no argument"):
    common.parse_arg("x")


def test_parse_arg_unknown_key():
  message = one_line_error("base,stesp=3")
  assert "unknown Toy config argument 'stesp=3' in 'base,stesp=3'" in message
  assert "did you mean steps?" in message
  assert message.endswith("; choose a variant (small, base, large) and/or flag, key=value for "
                          "steps (int), lr (float), name (str)")


def test_parse_arg_unknown_bare_token():
  message = one_line_error("base,flga")
  assert "'flga'" in message and "'base,flga'" in message and "did you mean flag?" in message


def test_parse_arg_bad_variant_lists_variants():
  message = one_line_error("larg")
  assert "'larg'" in message and "did you mean large?" in message
  assert "a variant (small, base, large)" in message
  message = one_line_error("small,large")
  assert "'small'" in message and "'large'" in message and "'small,large'" in message
  assert "small, base, large" in message


@pytest.mark.parametrize("token,kind", [("steps=ten", "an int"), ("steps=1.5", "an int"),
                                        ("lr=fast", "a float"), ("flag=yes", "true or false")])
def test_parse_arg_bad_value(token, kind):
  message = one_line_error(f"base,{token}")
  assert f"'{token}'" in message and f"'base,{token}'" in message
  assert f"takes {kind}" in message


def test_parse_arg_value_needed():
  message = one_line_error("steps")
  assert "'steps'" in message and "steps=<int>" in message


def test_parse_arg_bad_declarations():
  with pytest.raises(ValueError):
    common.parse_arg("", variants=("a", "b"), default_variant="c")
  with pytest.raises(ValueError):
    common.parse_arg("", variants=("a",), default_variant="a", a=False)
  with pytest.raises(TypeError):
    common.parse_arg("", sizes=(1, 2))


# --- (c) a misspelt resnet argument ------------------------------------------------------

def test_resnet_misspelt_flag():
  with pytest.raises(ValueError) as e:
    module("resnet").get_config("resnet50,papr")
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith("unknown ResNet config argument 'papr' in 'resnet50,papr'")
  assert "paper, smoke" in message and "resnet18_option_a" in message


def test_resnet_near_miss_variant():
  with pytest.raises(ValueError) as e:
    module("resnet").get_config("resnet5")
  message = str(e.value)
  assert "\n" not in message
  assert "'resnet5'" in message and "did you mean" in message
  assert all(v in message for v in module("resnet").VARIANTS)


# --- (d) the real command-line parse ------------------------------------------------------

def cli_config(monkeypatch, *args):
  """--config as cnn_jax.main defines it, parsed in-process from the repository root."""
  monkeypatch.chdir(ROOT)
  argv = ["cnn_jax.main", *args]
  flag_values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True,
                                           flag_values=flag_values, sys_argv=argv)
  flag_values(argv)
  return holder.value


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_smoke(monkeypatch, family):
  variant = FAMILIES[family]
  config = cli_config(monkeypatch, f"--config=configs/{family}.py:{variant},smoke")
  assert config.to_dict() == module(family).get_config(f"{variant},smoke").to_dict()
  assert config.is_locked
  check_config(config)


def test_cli_smoke_then_overrides(monkeypatch):
  config = cli_config(monkeypatch, "--config=configs/vgg.py:vgg16,smoke",
                      "--config.num_train_steps=5", "--config.batch_size=8")
  assert (config.model, config.num_train_steps, config.batch_size) == ("vgg16", 5, 8)
  assert config.eval_protocol == "center"


def test_cli_fashion_mnist(monkeypatch):
  plain = cli_config(monkeypatch, "--config=configs/fashion_mnist.py")
  smoke = cli_config(monkeypatch, "--config=configs/fashion_mnist.py:smoke")
  assert (plain.num_train_steps, smoke.num_train_steps) == (-1, 20)


def test_cli_bad_argument_is_one_line(monkeypatch):
  with pytest.raises(flags.Error) as e:
    cli_config(monkeypatch, "--config=configs/resnet.py:resnet50,papr")
  lines = [l for l in str(e.value).splitlines() if l.startswith("ValueError: ")]
  assert lines == ["ValueError: unknown ResNet config argument 'papr' in 'resnet50,papr' "
                   "(did you mean paper?); choose a variant (resnet18, resnet34, resnet50, "
                   "resnet101, resnet152, plain18, plain34, resnet18_option_a, "
                   "resnet34_option_a) and/or paper, smoke"]
