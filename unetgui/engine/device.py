"""Device choice (CUDA > MPS > CPU), CPU threads and mixed precision."""

from __future__ import annotations

import os

import torch

from unetgui.core.errors import UnetguiError
from unetgui.engine.config import check_device  # the one device list (engine/config.py), torch-free


def pick_device(name: str = "auto") -> torch.device:
    """The device to run on; ``auto`` takes CUDA, then Apple MPS, then the CPU."""
    check_device(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UnetguiError("an NVIDIA GPU (CUDA) was asked for, but this machine has no CUDA GPU that torch can use: "
                           "choose the CPU or automatic (Device in the app, --device on the command line)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UnetguiError("an Apple GPU (MPS) was asked for, but this machine has none: choose the CPU or automatic "
                           "(Device in the app, --device on the command line)")
    return torch.device(name)


def configure_threads(threads: int | None = None) -> int:
    """Use ``threads`` CPU threads for torch (default: all cores); returns the number set."""
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def configure_cuda() -> None:
    """cuDNN picks the fastest convolution algorithm per input shape (autotuned once per shape, as nnU-Net
    does): training patches and inference batches keep one shape, so the search pays for itself at once."""
    torch.backends.cudnn.benchmark = True


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Autocast dtype: bf16 on CUDA GPUs that compute it natively (Ampere and later, compute capability 8),
    else fp16 (T4, V100, RTX 20xx: ``torch.cuda.is_bf16_supported()`` says True there too, as it counts
    emulation, which is slow); none on CPU (bf16 is ~10x slower there). Of ``device``, not the current one."""
    if device.type == "cuda":
        return torch.bfloat16 if bf16_native(torch.cuda.get_device_capability(device)) else torch.float16
    return None


def bf16_native(capability: tuple[int, int]) -> bool:
    """True for a CUDA compute capability whose tensor cores compute bf16 (8.0, Ampere, and later)."""
    return capability[0] >= 8


def free_gpu_bytes(device: torch.device) -> int:
    """Bytes a new allocation can take on a CUDA ``device``: the driver's free memory plus what torch's caching
    allocator holds unused (``mem_get_info`` counts that as used, so it alone drifts from run to run)."""
    free = torch.cuda.mem_get_info(device)[0]
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def describe(device: torch.device) -> str:
    """E.g. 'CUDA: NVIDIA H100 (79 GB)' or 'CPU (2 threads)', for the status bar and logs."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"CUDA: {props.name} ({props.total_memory / 2**30:.0f} GB)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"
