"""torch in a process that also holds TensorFlow: `block_triton()` before importing it.

torch's Linux x86-64 wheels depend on triton, the GPU kernel compiler, and importing
torchvision loads it. triton's bundled LLVM crashes a process that has loaded TensorFlow's
(`import tensorflow, triton` dies with SIGSEGV in `triton/knobs.py`, torch 2.14.1 /
triton 3.8.0 / tensorflow-cpu 2.21.0), in either import order. Weight conversion never
compiles a GPU kernel, so the converter and the tests import torch with triton marked
absent, which torch handles as a machine without triton. A process that needs triton
(`torch.compile` on a GPU, as in the benchmark's GPU peer) never imports TensorFlow and
does not call this.
"""

from __future__ import annotations

import sys


def block_triton() -> None:
  """Makes `import triton` raise ImportError in this process, unless it is already loaded."""
  sys.modules.setdefault("triton", None)
