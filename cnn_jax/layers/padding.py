"""Convolution padding specs: what a layer takes (`resolve_padding`) and the explicit
((top, bottom), (left, right)) pairs the CPU paths that build a convolution from slices
need (`explicit_padding`)."""

from __future__ import annotations

from typing import Sequence

from jax import lax

PaddingLike = str | int | Sequence[tuple[int, int]] | None


def resolve_padding(padding: PaddingLike, kernel_size: tuple[int, int],
                    dilation: tuple[int, int] = (1, 1)):
  """Turns a padding spec into what `lax.conv_general_dilated` accepts.

  None means symmetric padding of (k-1)*d//2 on each side (Caffe / PyTorch convention);
  an int pads that many pixels on every side; 'SAME' is TensorFlow's asymmetric rule
  ((0, 1) for stride 2 on even sizes), needed for weights trained in TF / Keras.
  """
  if padding is None:
    return tuple(((k - 1) * d // 2, (k - 1) * d // 2) for k, d in zip(kernel_size, dilation))
  if isinstance(padding, str):
    return padding.upper()
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  return tuple(tuple(p) for p in padding)


def explicit_padding(padding, in_hw: Sequence[int], kernel_hw: Sequence[int],
                     strides: Sequence[int], dilation: Sequence[int] = (1, 1)):
  """`padding` as `resolve_padding` returns it ('SAME', 'VALID' or pairs) as
  ((top, bottom), (left, right)) for an input of `in_hw`."""
  if isinstance(padding, str):
    dilated = [(k - 1) * d + 1 for k, d in zip(kernel_hw, dilation)]
    return tuple(tuple(p) for p in lax.padtype_to_pads(in_hw, dilated, strides, padding))
  return tuple(tuple(int(v) for v in p) for p in padding)
