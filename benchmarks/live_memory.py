"""Peak bytes of live tensors, counted without a GPU.

:class:`LiveBytes` is a TorchDispatchMode that records the storage of every tensor an aten op
creates while it is active and follows it with a weak reference, so its peak is the largest sum
of tensor storages alive at once: what ``torch.cuda.max_memory_allocated`` reports above the
memory allocated before the mode was entered, up to the caching allocator's rounding and the
kernels' own workspaces (cuBLAS, cub scans), which it cannot see. It runs on the CPU and on the
meta device (shapes only, no compute), so the memory of a full-size decode can be accounted on a
machine without an accelerator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveBytes(TorchDispatchMode):
    """Tracks live tensor bytes created inside the mode; ``peak`` is the high-water mark."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0
        self.paused = False
        # Bytes held by work the mode does not see (added by the caller, see ``reserve``).
        self.extra = 0
        self.largest: list[tuple[int, str]] = []

    def current(self) -> int:
        for key in [key for key, (ref, _) in self.live.items() if ref.expired()]:
            del self.live[key]
        return sum(size for _, size in self.live.values())

    def _note(self) -> None:
        self.peak = max(self.peak, self.current() + self.extra)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.paused:
            return out
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                ref = StorageWeakRef(storage)
                if ref.cdata not in self.live:
                    self.live[ref.cdata] = (ref, storage.nbytes())
                    self.largest.append((storage.nbytes(), f"{func} {tuple(tensor.shape)}"))
        self.largest = sorted(self.largest, reverse=True)[:8]
        self._note()
        return out

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Ops in this block are not counted (a stand-in computation's own temporaries)."""
        self.paused = True
        try:
            yield
        finally:
            self.paused = False

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Counts ``nbytes`` as live inside this block (e.g. a network's transient, measured
        apart on the meta device), on top of the tracked tensors."""
        self.extra += nbytes
        self._note()
        try:
            yield
        finally:
            self.extra -= nbytes
