"""Turn decoded RGB frames into a model's input tensor, as its InputSpec says."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..models.spec import InputSpec

if TYPE_CHECKING:
    import torch


def center_crop(frame: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """The centre `size` (or (height, width)) of a frame; a smaller frame stays whole."""
    ch, cw = (size, size) if isinstance(size, int) else size
    h, w = frame.shape[:2]
    top = max(0, (h - ch) // 2)
    left = max(0, (w - cw) // 2)
    return frame[top : top + ch, left : left + cw]


def stretch_to(frames: list[np.ndarray], count: int) -> list[np.ndarray]:
    """Repeat frames evenly (order kept) until there are `count` of them."""
    if len(frames) >= count:
        return frames
    idx = np.floor(np.arange(count) * len(frames) / count).astype(int)
    return [frames[i] for i in idx]


def stack_clip(frames: list[np.ndarray], spec: InputSpec, crop: bool = True) -> np.ndarray:
    """(T, H, W, 3) uint8: frames cropped and padded in time; a quarter of the float size,
    so this is what decoding processes hand over."""
    return np.stack(stretch_to(cropped(frames, spec, crop), spec.pad_to))


def cropped(frames: list[np.ndarray], spec: InputSpec, crop: bool = True) -> list[np.ndarray]:
    """The frames cropped as the model asks, not padded in time (a step of a stream)."""
    if crop and spec.crop_hw is not None:
        return [center_crop(f, spec.crop_hw) for f in frames]
    return frames


def clip_to_array(clip: np.ndarray, spec: InputSpec, out: np.ndarray | None = None) -> np.ndarray:
    """(C, T, H, W) float32 from a stacked uint8 clip, scaled as the model expects (into
    `out` where given: a batch's row, not a copy to stack). In numpy, so that every
    backend, torch or not, prepares the same."""
    x = np.empty((clip.shape[3], *clip.shape[:3]), np.float32) if out is None else out
    np.copyto(x, clip.transpose(3, 0, 1, 2), casting="unsafe")
    if spec.value_range is not None:
        lo, hi = spec.value_range
        x *= np.float32((hi - lo) / 255.0)
        x += np.float32(lo)
    if spec.mean is not None and spec.std is not None:
        x -= np.asarray(spec.mean, np.float32).reshape(3, 1, 1, 1)
        x /= np.asarray(spec.std, np.float32).reshape(3, 1, 1, 1)
    return x


def frames_to_array(frames: list[np.ndarray], spec: InputSpec, crop: bool = True) -> np.ndarray:
    """(C, T, H, W) float32 from uint8 (H, W, 3) frames: crop, pad in time, scale."""
    return clip_to_array(stack_clip(frames, spec, crop), spec)


def frames_to_tensor(frames: list[np.ndarray], spec: InputSpec, crop: bool = True) -> torch.Tensor:
    """frames_to_array as a torch tensor (sharing its memory)."""
    import torch

    return torch.from_numpy(frames_to_array(frames, spec, crop))
