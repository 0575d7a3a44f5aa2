"""Known peak throughput of accelerators, for MFU (model FLOP utilisation)."""

from __future__ import annotations

# Dense (no sparsity) bfloat16 / float16 tensor-core peaks, TFLOP/s, from NVIDIA's data
# sheets; matched in order against the device's name, so the specific names come first.
PEAK_TFLOPS = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),   # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
)
PEAK_DTYPES = ("bfloat16", "float16")


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """FLOP/s of one device at `dtype`, or None where it is not in PEAK_TFLOPS (every CPU,
  and float32, whose tensor-core rate depends on TF32 settings)."""
  if dtype not in PEAK_DTYPES:
    return None
  for name, tflops in PEAK_TFLOPS:
    if name.lower() in device_kind.lower():
      return tflops * 1e12
  return None


def mfu(images_per_second: float | None, flops_per_image: float | None,
        device_kind: str, dtype: str, devices: int = 1) -> float | None:
  """Achieved FLOP/s over the devices' peak; None where either is unknown."""
  peak = peak_flops(device_kind, dtype)
  if not (peak and flops_per_image and images_per_second):
    return None
  return images_per_second * flops_per_image / (peak * devices)
