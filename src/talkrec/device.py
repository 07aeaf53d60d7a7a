"""The one place where talkrec picks a compute device, its threads, and what the CPU can do."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Iterator

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def get_device(preferred: str | None = None) -> str:
    """Return ``"cuda"``, ``"mps"`` or ``"cpu"``.

    ``preferred`` (or the ``TALKREC_DEVICE`` environment variable) wins when it is available;
    otherwise the best available accelerator is used, else the CPU.
    """
    import torch

    want = preferred or os.environ.get("TALKREC_DEVICE")
    if want:
        if want.startswith("cuda") and not torch.cuda.is_available():
            log.warning("device %r requested but CUDA is not available; using cpu", want)
            return "cpu"
        return want
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@functools.lru_cache(maxsize=1)
def has_amx_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX, Sapphire Rapids
    and later: the ``amx_bf16`` flag of ``/proc/cpuinfo``; False where it cannot be read).
    Without it torch emulates bfloat16 products, slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


def give_back_memory() -> None:
    """Hand the C heap's free pages back to the OS (glibc's ``malloc_trim``; a no-op without
    glibc): after a stage has freed its buffers, the next stages start from what is live, not
    from that stage's peak (the text stage's torch pass leaves ~280 MB free but held)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


#: oneDNN kernels kept for reuse (oneDNN's default: 1024), see :func:`bound_onednn_cache`
ONEDNN_CACHE = 16


def bound_onednn_cache() -> None:
    """Keep at most :data:`ONEDNN_CACHE` oneDNN kernels cached in this process, unless the
    environment already says (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``). torch's bfloat16 products
    build one set of kernels per matrix shape; descriptions sorted by length need only the
    current batch shape's, while oneDNN's default keeps every shape's for the life of the
    process: 48 MB more at the peak of a Last.fm build (926 vs 974 MB), at the same speed.
    oneDNN reads the setting when it builds its first kernel, so this acts only before torch's
    first oneDNN product in the process."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE))


def free_cores(n: int | None = None) -> int:
    """CPU threads to use: ``n`` when given, else ``TALKREC_THREADS``, else the cores this
    process may run on (``os.sched_getaffinity``) less the ones others keep busy, at least one.

    "Busy" is the smaller of the 1-minute load average and the processes runnable right now
    besides this one (``/proc/loadavg``): the average alone counts this process's own
    earlier work, the instant count alone misses bursts. On a shared 2-core machine two
    threads are faster only while the other core is idle (STACK.md), so a busy machine
    gets one thread and an idle one every core.
    """
    if n is not None:
        return max(1, int(n))
    env = os.environ.get("TALKREC_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            log.warning("TALKREC_THREADS=%r is not an integer; ignored", env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - _busy_cores())


def _busy_cores() -> int:
    try:
        fields = open("/proc/loadavg", encoding="ascii").read().split()
        load1, running = float(fields[0]), int(fields[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):
        try:
            load1 = running = os.getloadavg()[0]
        except OSError:  # pragma: no cover - no load average on this platform
            return 0
    return max(0, int(min(load1, running) + 0.5))


def limit_torch_threads(n: int) -> None:
    """At most ``n`` intra-op threads for torch in this process, without importing it: torch
    reads ``OMP_NUM_THREADS`` when it is first imported (e.g. by a media encoder loaded on
    the first upload); where it is imported already, its setting changes now."""
    n = max(1, int(n))
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` intra-op CPU threads (``None``: leave torch's setting).

    Small MLPs gain little from a second thread and lose badly to oversubscription on a
    busy machine (measured here: 70 ms/step with 1 thread vs 600-2000 ms with 2 under load),
    so talkrec's trainers default to one thread on CPU.
    """
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def lower_thread_priority(nice: int) -> None:
    """Set the calling thread's scheduling priority ``nice`` below the process's (Linux: each
    thread has its own nice value, and a new thread starts with its creator's; elsewhere
    nothing changes). A thread pool's ``initializer`` for work that should yield the CPU to
    everything else, such as a service's writes; relative to the process, not to the calling
    thread, so a pool started from such a thread does not sink further."""
    try:
        import threading
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())     # the main thread's: the process's own
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, base + nice))
    except (AttributeError, OSError):  # pragma: no cover - platforms without per-thread priority
        pass
