import subprocess
import sys

import pytest

from conftest import ROOT


def test_torchvision_imports_beside_tensorflow_with_triton_blocked():
  """The crash `block_triton` avoids is real where triton is installed: TensorFlow, then
  torchvision, dies with SIGSEGV without the block and builds a model with it."""
  pytest.importorskip("torchvision")
  import importlib.metadata
  code = ("import sys; {block}import tensorflow, jax, torch, torchvision; "
          "m = torchvision.models.resnet18().eval(); "
          "print(tuple(m(torch.zeros(1, 3, 32, 32)).shape))")
  with_block = subprocess.run(
      [sys.executable, "-c", code.format(
          block="from cnn_jax.convert.torch_import import block_triton; block_triton(); ")],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert with_block.returncode == 0, with_block.stderr[-2000:]
  assert with_block.stdout.strip().endswith("(1, 1000)")
  try:
    importlib.metadata.distribution("triton")  # (find_spec sees conftest's block)
  except importlib.metadata.PackageNotFoundError:
    return  # nothing to crash: this torch build has no triton
  without = subprocess.run([sys.executable, "-c", code.format(block="")], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
  assert without.returncode == -11, (without.returncode, without.stderr[-2000:])
