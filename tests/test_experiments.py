"""The benchmark scripts still run (tiny settings); their figures are not checked here."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, subprocess_env


@pytest.mark.slow
def test_bench_input_pipeline_runs_every_recipe(tmp_path):
  from PIL import Image
  photo = tmp_path / "photo.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), np.uint8)).save(photo)
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "bench_input_pipeline.py"),
       "--images=6", "--size=32", "--seconds=0.2", "--rounds=1", f"--photos={photo}"],
      cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert any("JPEGs cut from 1 photo(s)" in l for l in lines), proc.stdout
  for recipe in ("inception crop + flip", "inception + colour distortion",
                 "resnet_scale + flip", "resnet_scale + flip + PCA"):
    assert sum(l[:30].strip() == recipe for l in lines) == 1, (recipe, proc.stdout)
  assert any(l.startswith("decode only") for l in lines), proc.stdout


def test_bench_cpu_gradients_times_both_sides_of_a_switch():
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.bench_cpu_gradients", "--path", "fence",
       "--model", "resnet18", "--batch", "2", "--size", "16", "--channels", "1",
       "--num-classes", "10", "--steps", "1", "--set", "optimizer=nesterov",
       "--model-kwargs", "stem=small,width=4,stage_sizes=(1,1,1,1)"],
      cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = proc.stdout
  assert "resnet18, batch 2 at 16px" in out, out
  assert "custom VJP (fenced operands)" in out and "XLA fence gradient" in out, out
  assert "speed-up:" in out, out


@pytest.mark.parametrize("args,message", [
    (["--set", "no_such_field=1"], "--set no_such_field: no such config field"),
    (["--path", "patches", "--model", "nope"], "unknown model 'nope'")])
def test_bench_cpu_gradients_rejects_bad_input_in_one_line(args, message):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.bench_cpu_gradients", *args],
      cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  assert message in proc.stderr.strip().splitlines()[-1]


def test_bench_conv_ops_times_the_same_operation_on_both_sides(capsys):
  pytest.importorskip("torch")  # requirements-test.txt installs it
  from experiments import bench_conv_ops
  assert bench_conv_ops.main(["--shapes", "quickstart", "--batch", "2", "--steps", "1",
                              "--rounds", "1"]) == 0
  rows = [l for l in capsys.readouterr().out.splitlines() if "max rel diff" in l]
  assert len(rows) == len(bench_conv_ops.SHAPES["quickstart"]), rows
  for row in rows:
    assert all(f"{op} " in row for op in bench_conv_ops.OPS), row
    assert float(row.rsplit(" ", 1)[1]) < 1e-4, row  # both sides computed the same values
