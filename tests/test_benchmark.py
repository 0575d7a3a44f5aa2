"""`python -m cnn_jax.benchmark` and experiments/bench_gpu_resnet50.py: the JSON they print,
the plain path, peers that cannot run, and running without TensorFlow / ml_collections /
clu. Only what is printed is checked, never how fast anything is."""

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import ROOT, subprocess_env

from cnn_jax import platform
from cnn_jax.benchmark import peaks, peers, runner
from cnn_jax.benchmark.__main__ import main as benchmark_main

# The small-image ResNet at width 8 with one block per stage: a few seconds to compile.
TINY = ["--model", "resnet18", "--model-kwargs", "stem=small,width=8,stage_sizes=(1,1,1,1)",
        "--batch-size", "4",
        "--image-size", "32", "--steps", "2", "--warmup", "1", "--num-classes", "10"]
OURS_FIELDS = ("images_per_second", "step_ms", "compile_seconds", "peak_memory_bytes",
               "gflops_per_image")


def run_benchmark(*args, timeout=300):
  proc = subprocess.run([sys.executable, "-m", "cnn_jax.benchmark", *args], cwd=ROOT,
                        env=subprocess_env(), capture_output=True, text=True,
                        timeout=timeout)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 1, proc.stdout  # one JSON line, nothing else on stdout
  return json.loads(lines[0])


def check_ours(result):
  for field in OURS_FIELDS:
    assert isinstance(result[field], float | int) and result[field] > 0, (field, result)
  assert math.isclose(result["images_per_second"] * result["step_ms"] / 1e3,
                      result["batch_size"], rel_tol=1e-6)
  assert 0 < result["lower_seconds"] < result["compile_seconds"]
  assert result["peak_memory_source"] in ("device", "process_max_rss")
  assert result["mfu"] is None  # a CPU: no known peak
  assert result["backend"] == "cpu" and result["devices"] == 1


@pytest.mark.slow
def test_train_step_against_the_plain_path():
  result = run_benchmark(*TINY, "--peer", "plain")
  check_ours(result)
  assert result["mode"] == "train" and result["model_kwargs"] == {
      "stem": "small", "width": 8, "stage_sizes": [1, 1, 1, 1]}
  settings = result["cpu_settings"]
  assert (settings["malloc"] and settings["inline_dispatch"] and settings["depthwise_vjp"]
          and settings["pointwise_vjp"] and settings["patches_conv"] and settings["fenced_vjp"]
          and settings["maxpool_vjp"])
  assert settings["xla_flag"] == platform._jaxlib_version().startswith(
      platform._YNN_FLAG_VERSIONS)
  assert result["peer"] == "plain" and result["peer_images_per_second"] > 0
  assert math.isclose(result["ratio"],
                      result["images_per_second"] / result["peer_images_per_second"])
  assert len(result["per_round"]) == 1 and result["per_round"][0]["ratio"] > 0


def test_plain_eval_step_without_tensorflow_ml_collections_or_clu():
  """What a GPU image without them runs: the worker of `--plain --mode infer`."""
  script = """
import json, sys
BLOCKED = ("tensorflow", "tensorflow_datasets", "ml_collections", "clu")
for name in BLOCKED:
  sys.modules[name] = None  # importing any of them now fails
from cnn_jax.benchmark import runner
settings = runner.Settings(model="resnet18", batch_size=4, image_size=32, mode="infer",
                           steps=2, warmup=1, num_classes=10,
                           model_kwargs={"stem": "small", "width": 8}, plain=True)
result = runner.worker("plain", settings)
assert all(sys.modules.get(name) is None for name in BLOCKED)
print(json.dumps(result))
"""
  env = runner.worker_env("plain", True, subprocess_env())
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  check_ours({**result, "batch_size": 4})
  assert result["cpu_settings"] == {"xla_flag": False, "malloc": False,
                                    "inline_dispatch": False, "depthwise_vjp": False,
                                    "pointwise_vjp": False, "patches_conv": False,
                                    "fenced_vjp": False, "maxpool_vjp": False}


def test_plain_flag_measures_the_plain_side_and_rounds_alternate(monkeypatch, capsys):
  calls = []

  def fake_run_side(settings, side, timeout=None, env=None):
    calls.append((side, settings.plain))
    ips = 10.0 if side == "plain" else 4.0 + len(calls)
    return {"images_per_second": ips, "step_ms": 1e3 / ips, "compile_seconds": 1.0,
            "lower_seconds": 0.25,
            "peak_memory_bytes": 1, "peak_memory_source": "process_max_rss",
            "gflops_per_image": 1.0, "mfu": None, "backend": "cpu", "device_kind": "cpu",
            "devices": 1, "jax_version": "x", "cpu_settings": {}, "compile_cache_dir": None,
            "first_step_seconds": 2.0, "version": "keras 3"}

  monkeypatch.setattr(runner, "run_side", fake_run_side)
  monkeypatch.setattr(peers, "check", lambda *args: None)
  benchmark_main(TINY + ["--plain", "--peer", "keras", "--rounds", "3"])
  result = json.loads(capsys.readouterr().out)
  # Each round starts with the side that went second before.
  assert calls == [("plain", True), ("keras", True), ("keras", True), ("plain", True),
                   ("plain", True), ("keras", True)]
  assert result["plain"] and result["peer"] == "keras"
  assert result["per_round"] == [
      {"images_per_second": 10.0, "peer_images_per_second": ips, "ratio": 10.0 / ips}
      for ips in (6.0, 7.0, 10.0)]
  assert result["peer_images_per_second"] == 7.0 and result["ratio"] == 10.0 / 7.0


@pytest.mark.skipif(peers.installed("torch"), reason="torch is installed here")
def test_missing_torch_is_one_line_from_the_command():
  proc = subprocess.run([sys.executable, "-m", "cnn_jax.benchmark", "--model", "resnet50",
                         "--batch-size", "2", "--image-size", "32", "--peer", "torchvision"],
                        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                        timeout=60)
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr.startswith("error: the torchvision peer needs torch")
  assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("installed,args,expected", [
    (False, ["--model", "resnet50", "--peer", "torchvision"],
     "error: the torchvision peer needs torch and torchvision, not installed here"),
    (False, ["--model", "resnet50", "--peer", "keras"], "error: the keras peer needs keras"),
    (True, ["--model", "resnet18", "--peer", "keras"], "the keras peer has no model 'resnet18'"),
    (True, ["--model", "resnet50", "--peer", "keras", "--model-kwargs", "width=8"],
     "drop --model-kwargs"),
    (True, ["--model", "mobilenet_v2", "--peer", "torchvision", "--model-kwargs", "width=8"],
     "drop --model-kwargs width"),
    (True, ["--model", "resnet18", "--peer", "torchvision", "--model-kwargs", "shortcut=none"],
     "its resnet18 takes stem, width, stage_sizes"),
    (True, ["--model", "resnet18", "--peer", "torchvision", "--model-kwargs", "stem=cifar"],
     "stem imagenet or small, not 'cifar'"),
    (True, ["--model", "resnet18", "--peer", "torchvision", "--model-kwargs",
            "stage_sizes=(1,1,1)"], "four stages, not stage_sizes=(1, 1, 1)"),
    (True, ["--model", "densenet121", "--peer", "torchvision", "--channels", "1"],
     "takes 3 input channels, not 1"),
    (True, ["--model", "densenet121", "--peer", "torchvision", "--model-kwargs",
            "growth_rate=8"], "the torchvision peer rebuilds ResNets, VGGs, mobilenet_v2"),
    (True, ["--model", "vgg11", "--peer", "torchvision", "--model-kwargs", "act=tanh"],
     "its vgg11 takes width_multiplier, fc_features, fc_window"),
    (True, ["--model", "vgg16_conv1", "--peer", "torchvision"],
     "the torchvision peer has no model 'vgg16_conv1'"),
    (True, ["--model", "vgg11", "--peer", "torchvision", "--model-kwargs", "fc_window=7"],
     "needs fc_window equal to the last map's side, 32 // 32 = 1, not 7"),
    (True, ["--model", "mobilenet_v2", "--peer", "torchvision", "--model-kwargs",
            "residual=False"], "drop --model-kwargs residual"),
    (True, ["--model", "resnet50", "--peer", "plain", "--plain"], "drop --plain"),
    (True, ["--model", "resnet50", "--set", "weight_decay"], "--set takes KEY=VALUE pairs"),
    (True, ["--model", "resnet50", "--steps", "0"], "--steps must be >= 1"),
])
def test_mistakes_and_missing_peers_are_one_line(monkeypatch, capsys, installed, args,
                                                 expected):
  monkeypatch.setattr(peers, "installed", lambda module: installed)
  with pytest.raises(SystemExit) as e:
    benchmark_main(args + ["--batch-size", "2", "--image-size", "32"])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err


@pytest.mark.skipif(not (peers.installed("torch") and peers.installed("torchvision")),
                    reason="needs torch and torchvision")
@pytest.mark.parametrize("model,channels,kwargs", [
    ("resnet18", 1, {"stem": "small", "width": 16, "stage_sizes": (1, 1, 1, 1)}),  # quickstart
    ("resnet34", 3, {"stem": "small", "width": 8}),
    ("resnet50", 3, {"width": 8, "stage_sizes": (1, 2, 1, 1)}),
    ("resnet50", 3, {}),  # torchvision's own model, untouched
])
def test_torchvision_peer_resnets_are_the_registry_nets(model, channels, kwargs):
  """The peer's rebuilt ResNet has the registry model's parameter count and output shape
  for the same fields, input channels and classes."""
  import torch
  from cnn_jax.models import summary
  net = peers.torchvision_net(model, 10, channels, kwargs)
  assert sum(p.numel() for p in net.parameters()) == summary.count_params(
      model, 32, channels=channels, num_classes=10, **kwargs)
  net.eval()
  with torch.no_grad():
    assert net(torch.zeros(2, channels, 32, 32)).shape == (2, 10)
  if kwargs.get("stem") == "small":
    assert isinstance(net.maxpool, torch.nn.Identity) and net.conv1.stride == (1, 1)


# The studies' VGG and MobileNetV2 at the CPU scale (configs/vgg.py and configs/mobilenet.py
# cpu_study), and torchvision's own nets at 224 px.
STUDY_VGG = {"width_multiplier": 0.25, "fc_features": (256, 256), "fc_window": 1,
             "weight_init": "glorot", "dense_eval": False}


@pytest.mark.skipif(not (peers.installed("torch") and peers.installed("torchvision")),
                    reason="needs torch and torchvision")
@pytest.mark.parametrize("model,channels,size,kwargs", [
    ("vgg11", 1, 32, STUDY_VGG),
    ("vgg19", 1, 32, {**STUDY_VGG, "batch_norm": True, "weight_init": "he"}),
    ("vgg13_bn", 3, 64, {**STUDY_VGG, "width_multiplier": 0.3, "fc_window": 2}),
    ("vgg16", 3, 224, {}),
    ("mobilenet_v2", 1, 32, {"width_multiplier": 0.5}),
    ("mobilenet_v2", 3, 32, {"width_multiplier": 0.35}),
    ("mobilenet_v2", 3, 32, {}),
])
def test_torchvision_peer_vggs_and_mobilenet_v2_are_the_registry_nets(model, channels, size,
                                                                      kwargs):
  """The peer's rebuilt VGG / MobileNetV2 has the registry model's parameter count, its
  layer widths, and its output shape, for the same fields, channels and classes."""
  import jax
  import torch
  from cnn_jax.models import registry, summary
  peers.check("torchvision", model, "float32", channels, kwargs, size)
  net = peers.torchvision_net(model, 10, channels, kwargs)
  assert sum(p.numel() for p in net.parameters()) == summary.count_params(
      model, size, channels=channels, num_classes=10, **kwargs)
  variables = summary.abstract_variables(registry.create(model, num_classes=10, **kwargs),
                                         size, channels)
  ours = [leaf.shape[-1] for path, leaf in jax.tree_util.tree_leaves_with_path(
      variables["params"]) if "kernel" in jax.tree_util.keystr(path)]
  theirs = [m.out_channels if isinstance(m, torch.nn.Conv2d) else m.out_features
            for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
  assert sorted(ours) == sorted(theirs) and len(ours) == len(theirs)
  net.eval()
  with torch.no_grad():
    assert net(torch.zeros(2, channels, size, size)).shape == (2, 10)


def test_key_value_arguments():
  assert runner.key_values("stem=small,width=16,stage_sizes=(1, 1,1,1),x=[1,2]", "--m") == {
      "stem": "small", "width": 16, "stage_sizes": (1, 1, 1, 1), "x": [1, 2]}
  assert runner.key_values("", "--m") == {}
  settings = runner.Settings("resnet18", 2, 28, model_kwargs={"stage_sizes": (1, 1)},
                             fields={"lr_decay_epochs": (30, 60)})
  assert runner.Settings.from_json(settings.to_json()) == settings


def test_worker_environments():
  base = {"XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {platform.YNN_FLAG}"}
  assert runner.worker_env("ours", False, base) == base
  for side, plain in (("ours", True), ("plain", False), ("keras", False)):
    env = runner.worker_env(side, plain, base)
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"
    assert (env["CNN_JAX_CPU_TUNING"] == env["CNN_JAX_DEPTHWISE_VJP"]
            == env["CNN_JAX_POINTWISE_VJP"] == env["CNN_JAX_PATCHES_CONV"]
            == env["CNN_JAX_FENCED_VJP"]
            == env["CNN_JAX_MAXPOOL_VJP"] == "0")
  assert runner.worker_env("keras", False, base)["KERAS_BACKEND"] == "jax"
  assert "XLA_FLAGS" not in runner.worker_env("plain", False, {"XLA_FLAGS": platform.YNN_FLAG})


def test_default_config_without_ml_collections(monkeypatch):
  from configs import default
  from cnn_jax.benchmark import ours
  real = default.get_config().to_dict()
  monkeypatch.setitem(sys.modules, "ml_collections", None)
  plain = ours.default_config()
  assert isinstance(plain, ours.PlainConfig) and sys.modules["ml_collections"] is None
  assert plain.to_dict() == real  # placeholders are None in both
  config = ours.build_config("resnet18", 4, 32, "bfloat16", {"stem": "small"},
                             {"weight_decay": 1e-4})
  assert (config.model_kwargs.to_dict(), config.weight_decay, config.eval_batch_size) == (
      {"stem": "small"}, 1e-4, 4)
  with pytest.raises(ValueError, match="no such config field"):
    ours.build_config("resnet18", 4, 32, fields={"weight_decy": 1e-4})


def test_peaks_and_mfu():
  assert peaks.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
  assert peaks.peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12
  assert peaks.peak_flops("NVIDIA H200", "float16") == 989e12
  assert peaks.peak_flops("NVIDIA A100-SXM4-80GB", "bfloat16") == 312e12
  assert peaks.peak_flops("NVIDIA H200", "float32") is None
  assert peaks.peak_flops("cpu", "bfloat16") is None
  assert peaks.mfu(1000.0, 24.5e9, "NVIDIA H200", "bfloat16") == pytest.approx(
      1000 * 24.5e9 / 989e12)
  assert peaks.mfu(1000.0, 24.5e9, "cpu", "bfloat16") is None


@pytest.mark.slow
def test_gpu_script_runs_tiny_on_cpu():
  """experiments/bench_gpu_resnet50.py at 32 px, batch 2, in bfloat16 as on the GPU; the
  torch side where torch is installed (without torch.compile: it needs a C++ toolchain and
  minutes on 2 cores)."""
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "bench_gpu_resnet50.py"),
       "--batch-size", "2", "--image-size", "32", "--steps", "1", "--warmup", "1",
       "--rounds", "1", "--no-torch-compile"],
      cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["ours_images_per_second"] > 0 and result["ours_gflops_per_image_xla"] > 0
  assert result["ours_mfu"] is None and result["gflop_per_image_for_mfu"] == pytest.approx(
      24.5 * (32 / 224) ** 2)
  if peers.installed("torch") and peers.installed("torchvision"):
    assert result["skipped"] == {"torch+compile": "--no-torch-compile"}
    assert result["torch_images_per_second"] > 0
    assert result["ratio_vs_torch"] == pytest.approx(
        result["ours_images_per_second"] / result["torch_images_per_second"])
  else:
    assert "torch" in result["skipped"]["torch"] and result["ratio_vs_torch"] is None


def _fake_compare(model, mode, ours, peer):
  return {"model": model, "mode": mode, "images_per_second": ours,
          "peer_images_per_second": peer, "ratio": ours / peer, "compile_seconds": 12.5,
          "rounds": 2, "date": "2026-12-05T15:00:00+00:00", "peer_version": "torch 2.x",
          "per_round": [{"ratio": ours / peer}, {"ratio": 1.1 * ours / peer}]}


def test_bench_table_renders_every_row_and_replaces_only_its_block(monkeypatch, tmp_path):
  """`make bench`'s table: each measured (model, mode) appears with its medians and the
  rounds' ratios; rows not measured say so; the README outside the markers is kept, as it
  is when the table is written (an edit made during the measurements stays)."""
  from cnn_jax.benchmark import table
  calls = []

  def compare(settings, peer, rounds):
    calls.append((settings.model, settings.mode, settings.batch_size, peer, rounds))
    if len(calls) == 1:  # someone edits the README while the table is measured
      readme.write_text(readme.read_text().replace("tail", "edited tail"))
    return _fake_compare(settings.model, settings.mode, 4.0, 5.0)

  monkeypatch.setattr(table.runner, "compare", compare)
  monkeypatch.setattr(table.peers, "check", lambda *a: None)
  readme = tmp_path / "README.md"
  readme.write_text(f"# head\n\n{table.BEGIN}\nold\n{table.END}\n\ntail\n")
  table.main(["--readme", str(readme), "--models", "resnet50,densenet121"])
  assert calls == [(m, mode, 8, "torchvision", 2) for m in ("resnet50", "densenet121")
                   for mode in ("train", "infer")]
  text = readme.read_text()
  assert text.startswith("# head\n") and text.endswith("\nedited tail\n")
  assert "old" not in text
  assert "| resnet50 | 4.00 / 5.00 (**0.80x**; rounds 0.80x, 0.88x) |" in text
  assert "| mobilenet_v2 | not measured | not measured | – |" in text
  assert "2026-12-05" in text and "torch 2.x" in text


def test_bench_table_mistakes_are_one_line_and_leave_the_readme(monkeypatch, capsys,
                                                                tmp_path):
  from cnn_jax.benchmark import table
  monkeypatch.setattr(table.runner, "compare", lambda *a: pytest.fail("measured anyway"))
  readme = tmp_path / "README.md"
  readme.write_text("no markers here\n")
  for args, expected in [([], "has no"), (["--models", "resnet5"], "resnet5 not in")]:
    with pytest.raises(SystemExit) as e:
      table.main(["--readme", str(readme), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
  assert readme.read_text() == "no markers here\n"
