"""How one decoding step runs: its thread count on a CPU, and its optional compiled form.

- Threads. A decoding step of a small prior is hundreds of tiny operations; splitting each over
  several intra-op threads buys nothing and makes every operation wait on a barrier, which collapses
  when other processes use the cores (a busy core delays every barrier). `decode_threads` runs small
  steps on one thread and large ones (where each matrix product streams megabytes of weights) on all.
- Compilation. A step has fixed shapes (see `im2wav.kv_cache`), so `torch.compile(fullgraph=True)`
  traces it once per prior; on CUDA `mode="reduce-overhead"` replays it as a CUDA graph. It is
  opt-in (`compile=True` in the samplers and the pipeline): compiling takes tens of seconds up to
  minutes, which pays on long generations. When compilation is impossible (no C++ compiler on a CPU,
  an old torch), decoding falls back to eager with one warning instead of failing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator

import torch

logger = logging.getLogger(__name__)

# multiply-adds of one decoding step (weights x rows) below which one thread is faster: at this size an
# operation takes microseconds, the same order as an intra-op barrier
SINGLE_THREAD_WORK = 64_000_000
THREADS_ENV = "IM2WAV_DECODE_THREADS"


def step_work(prior: torch.nn.Module, rows: int) -> int:
    """Multiply-adds of one decoding step: every transformer weight is used once per row."""
    return rows * sum(p.numel() for p in prior.layers.parameters())


def choose_threads(work: int, available: int | None = None) -> int:
    """Intra-op threads for a step of `work` multiply-adds (`IM2WAV_DECODE_THREADS` overrides).

    Args:
        work: multiply-adds per step (`step_work`).
        available: threads torch would use (default `torch.get_num_threads()`).
    """
    override = os.environ.get(THREADS_ENV)
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f"{THREADS_ENV}={override!r} must be a positive integer (threads per decoding step)")
        return int(override)
    available = available or torch.get_num_threads()
    return 1 if work < SINGLE_THREAD_WORK else available


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """Run the block with `threads` intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if threads != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def decode_threads(prior: torch.nn.Module, rows: int) -> Iterator[int]:
    """Run the block with the thread count `choose_threads` picks for this prior and batch (CPU only).

    The previous count is restored afterwards. On an accelerator nothing changes.
    """
    if prior.device.type != "cpu":
        yield torch.get_num_threads()
        return
    with torch_threads(choose_threads(step_work(prior, rows), torch.get_num_threads())) as threads:
        yield threads


def compile_step(step: Callable, device: torch.device) -> Callable:
    """`step` compiled with `fullgraph=True` (a CUDA graph on CUDA), or `step` itself where that fails.

    Compilation happens lazily at the first call. If it raises (no compiler, unsupported platform),
    this process decodes eagerly from then on, and one warning says why.
    """
    return _compiled_step(step, device.type == "cuda")


@functools.lru_cache(maxsize=None)
def _compiled_step(step: Callable, graphs: bool) -> _CompiledStep:
    return _CompiledStep(step, graphs)


class _CompiledStep:
    """The compiled form of a step (one per process and device kind), remembering whether it failed."""

    def __init__(self, step: Callable, graphs: bool):
        self.step, self.graphs, self.failed = step, graphs, False
        if graphs:
            self.compiled = torch.compile(step, fullgraph=True, dynamic=False, mode="reduce-overhead")
        else:  # the generated wrapper in C++ instead of Python saves ~0.3 ms per step (about 18% at 2 M
            # parameters: the Python wrapper asserts and reinterprets every weight on every call)
            self.compiled = torch.compile(step, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})

    def __call__(self, *args, **kwargs):
        if not self.failed:
            try:
                if not self.graphs:
                    return self.compiled(*args, **kwargs)
                # a CUDA graph's outputs are overwritten by its next replay: start a new step, keep a copy
                torch.compiler.cudagraph_mark_step_begin()
                return self.compiled(*args, **kwargs).clone()
            except Exception as err:  # noqa: BLE001 - any backend failure: eager still gives the same numbers
                self.failed = True
                logger.warning("compiled decoding is unavailable here (%s: %s); decoding eagerly",
                               type(err).__name__, str(err).splitlines()[0][:200] if str(err) else "")
        return self.step(*args, **kwargs)
