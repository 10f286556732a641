"""Shared pieces of the benchmarks: options, timing (median of alternating repeats), peak memory, machine info
and the Markdown table written to benchmarks/RESULTS.md.

Every benchmark line is a :class:`Comparison`: our function and torchvision's on identical inputs, plus a check
that both give the same result. :func:`compare` runs the check first and times only if it passes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision

from ssd_tutorial.train import AMP_DTYPES  # re-exported: the names --amp takes

__all__ = [
    "BenchOptions",
    "Comparison",
    "Mismatch",
    "Result",
    "add_model_options",
    "print_comparisons",
    "autocast",
    "compare",
    "full_float32",
    "machine_info",
    "measure_peak",
    "median_times",
    "timings",
    "same_detections",
    "sync",
    "write_section",
]



@dataclass(frozen=True)
class BenchOptions:
    """What to run and how: sizes (``quick``), device, mixed precision and memory format."""

    quick: bool = False
    device: str = "cpu"
    amp: str | None = None  # None (float32), "bf16" or "fp16"
    channels_last: bool = False
    repeats: int = 5  # timed calls per side (big models use fewer, see ``repeats_for``)
    train_batch: int | None = None  # None: per model default (see bench_train_step)
    infer_batch: int = 8
    models: tuple[str, ...] = ("tiny_shapes", "ssd300_voc")
    seed: int = 0

    def repeats_for(self, seconds_per_call: float) -> int:
        """Fewer repeats for calls that take seconds on this machine (at least 3, at most ``repeats``)."""
        if self.quick:
            return 1
        return max(3, min(self.repeats, int(30.0 / max(seconds_per_call, 1e-3))))


class Mismatch(Exception):
    """Ours and torchvision's results differ; the line is not timed."""


@dataclass
class Comparison:
    """One benchmark line: ``ours()`` and ``theirs()`` are timed; ``same(ours(), theirs())`` must pass first.

    ``same`` returns a short description of what matched or raises :class:`Mismatch`. When the checked
    results must come from other calls than the timed ones (e.g. float32 results while AMP is timed),
    ``ours_check`` / ``theirs_check`` give them.
    """

    what: str
    ours_name: str
    theirs_name: str
    ours: Callable[[], Any]
    theirs: Callable[[], Any]
    same: Callable[[Any, Any], str]
    goal: float | None = None  # speed-up the issue asks for, None if none
    images: int = 0  # images per call, for images/s (0: not an image pipeline)
    flops: float = 0.0  # floating-point operations of one ``ours()`` call, 0 if not counted
    note: str = ""
    ours_check: Callable[[], Any] | None = None
    theirs_check: Callable[[], Any] | None = None


@dataclass
class Result:
    """Measured line: median seconds per call, speed-up (> 1: ours faster) and peak memory in MB."""

    what: str
    ours_name: str
    theirs_name: str
    same: str
    ok: bool
    ours_s: float = float("nan")
    theirs_s: float = float("nan")
    ours_cpu_s: float = float("nan")
    theirs_cpu_s: float = float("nan")
    ours_mb: float = float("nan")
    theirs_mb: float = float("nan")
    repeats: int = 0
    goal: float | None = None
    images: int = 0
    flops: float = 0.0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        """torchvision's median wall time / ours."""
        return self.theirs_s / self.ours_s if self.ours_s > 0 else float("nan")

    @property
    def cpu_speedup(self) -> float:
        """torchvision's median CPU time / ours (leaves out time spent waiting for a core)."""
        return self.theirs_cpu_s / self.ours_cpu_s if self.ours_cpu_s > 0 else float("nan")


def sync(device: str | torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are complete."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def autocast(opts: BenchOptions, enabled: bool = True) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``opts.amp`` on ``opts.device`` (a no-op without AMP or with ``enabled=False``)."""
    if opts.amp is None or not enabled:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(opts.device).type, dtype=AMP_DTYPES[opts.amp])


@contextlib.contextmanager
def full_float32(device: str | torch.device):
    """Turn off TF32 for the result checks on CUDA (cuDNN and matmul round inputs to 10 bits with it on).

    Both sides then compute in true float32, so results agree to float32 rounding even where cuDNN picks
    different algorithms for the two models. Timed calls run with the defaults again.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def timings(functions: list[Callable[[], Any]], repeats: int, device: str) -> list[tuple[float, float]]:
    """Median (wall, CPU) seconds of each function over ``repeats`` calls.

    The functions take turns (a, b, a, b, ...) so that the load of a shared machine hits all of them alike.
    CPU time is this process's (all its threads): it leaves out time spent waiting for a core that other jobs
    hold, but still counts threads that spin while waiting for each other.
    No warm-up here: the caller has already called each function (the result check).
    """
    times: list[list[tuple[float, float]]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, out in zip(functions, times):
            sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            sync(device)
            out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for t in times]


def median_times(functions: list[Callable[[], Any]], repeats: int, device: str) -> list[float]:
    """Median wall seconds of each function over ``repeats`` alternating calls (see :func:`timings`)."""
    return [wall for wall, _ in timings(functions, repeats, device)]


def _proc_status_kb(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _reset_rss_peak() -> bool:
    """Give freed heap pages back to the OS and reset VmHWM to the current RSS (Linux); False if unsupported."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed memory otherwise; it would hide a later peak
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5": reset the peak resident set size (Linux >= 4.0)
        return True
    except OSError:
        return False


def measure_peak(function: Callable[[], Any], device: str) -> tuple[Any, float]:
    """Call ``function`` once; return its result and the peak memory it added, in MB.

    CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated before. CPU: the peak resident set
    size (VmHWM, reset before the call) above the RSS before the call; NaN where /proc cannot do that.
    """
    if torch.device(device).type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        result = function()
        sync(device)
        return result, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    can_reset = _reset_rss_peak()
    base = _proc_status_kb("VmRSS")
    result = function()
    peak = _proc_status_kb("VmHWM") if can_reset else float("nan")
    return result, max(peak - base, 0.0) / 1024


def compare(c: Comparison, opts: BenchOptions) -> Result:
    """Check that both sides agree, then time them (median of alternating repeats) and measure peak memory."""
    base = dict(what=c.what, ours_name=c.ours_name, theirs_name=c.theirs_name, goal=c.goal, images=c.images,
                flops=c.flops, note=c.note)  # fmt: skip
    start = time.perf_counter()
    with full_float32(opts.device):
        ours_out, ours_mb = measure_peak(c.ours_check or c.ours, opts.device)
        theirs_out, theirs_mb = measure_peak(c.theirs_check or c.theirs, opts.device)
    try:
        same = c.same(ours_out, theirs_out)
    except Mismatch as err:
        return Result(**base, same=f"DIFFERENT: {err}", ok=False)
    del ours_out, theirs_out
    if c.ours_check is not None or c.theirs_check is not None or torch.device(opts.device).type == "cuda":
        # the check ran other calls (or without TF32): warm up and measure the timed ones
        _, ours_mb = measure_peak(c.ours, opts.device)
        _, theirs_mb = measure_peak(c.theirs, opts.device)
    first_call = (time.perf_counter() - start) / 2
    repeats = opts.repeats_for(first_call)
    (ours_s, ours_cpu_s), (theirs_s, theirs_cpu_s) = timings([c.ours, c.theirs], repeats, opts.device)
    return Result(**base, same=same, ok=True, ours_s=ours_s, theirs_s=theirs_s, ours_cpu_s=ours_cpu_s,
                  theirs_cpu_s=theirs_cpu_s, ours_mb=ours_mb, theirs_mb=theirs_mb, repeats=repeats)  # fmt: skip


def same_detections(ours: list[dict], theirs: list[dict], box_atol: float = 2e-3) -> str:
    """Check two lists of per-image detections are equal up to the order of exactly tied scores.

    Returns a description ("N detections in B images") or raises :class:`Mismatch`.
    """
    if len(ours) != len(theirs):
        raise Mismatch(f"{len(ours)} vs {len(theirs)} images")
    for b, (a, t) in enumerate(zip(ours, theirs)):
        a = {k: v.detach().float().cpu() if k != "labels" else v.cpu() for k, v in a.items()}
        t = {k: v.detach().float().cpu() if k != "labels" else v.cpu() for k, v in t.items()}
        if len(a["scores"]) != len(t["scores"]):
            raise Mismatch(f"image {b}: {len(a['scores'])} vs {len(t['scores'])} detections")
        if not torch.allclose(a["scores"], t["scores"], rtol=1e-5, atol=1e-7):
            raise Mismatch(f"image {b}: scores differ")
        key_a = sorted(zip(a["scores"].tolist(), a["labels"].tolist(), a["boxes"].tolist()))
        key_t = sorted(zip(t["scores"].tolist(), t["labels"].tolist(), t["boxes"].tolist()))
        if [k[:2] for k in key_a] != [k[:2] for k in key_t]:
            raise Mismatch(f"image {b}: (score, label) pairs differ")
        boxes_a = torch.tensor([k[2] for k in key_a]).reshape(-1, 4)
        boxes_t = torch.tensor([k[2] for k in key_t]).reshape(-1, 4)
        if not torch.allclose(boxes_a, boxes_t, atol=box_atol, rtol=0):
            raise Mismatch(f"image {b}: boxes differ by up to {(boxes_a - boxes_t).abs().max():.3g} px")
    return f"same {sum(len(d['scores']) for d in ours)} detections in {len(ours)} images"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options every model benchmark module takes on its own: --quick, --device, --amp, --channels-last,
    --models (its --batch differs per module)."""
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=sorted(AMP_DTYPES))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--models", default="tiny_shapes,ssd300_voc")


def print_comparisons(lines: Iterable[Comparison], opts: BenchOptions, describe: Callable[[Result], str]) -> None:
    """Check and time each line (:func:`compare`) and print ``"what: same; " + describe(result)``."""
    for c in lines:
        r = compare(c, opts)
        print(f"{r.what}: {r.same}; {describe(r)}")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict[str, str]:
    """CPU model and cores, GPU name, library versions and the command line, as printable strings."""
    info = {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        "GPU": torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "none used",
        "torch / torchvision": f"{torch.__version__} / {torchvision.__version__}",
        "Python": f"{platform.python_version()} on {platform.platform()}",
        "command": " ".join(["python -m benchmarks.run", *sys.argv[1:]]),
    }
    if hasattr(os, "getloadavg"):
        info["load average at start"] = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return info


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def write_section(path: Path, markdown: str, start: str = START, end: str = END) -> None:
    """Put ``markdown`` between the ``start`` / ``end`` markers of ``path``; other sections stay as they are.

    A file without the markers gets the section appended; a missing file is created with a title.
    """
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text and text.index(start) < text.index(end):
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
