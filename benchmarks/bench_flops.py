"""FLOP/s: what this machine reaches on a large matrix product, and what share of it a training step reaches.

    python -m benchmarks.bench_flops [--quick] [--device cuda] [--dtype bf16]

The matmul rate is the practical peak (2 n^3 FLOPs per n x n product, median of repeats). A training step's
FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products,
forward and backward); divided by the step's median time they give the FLOP/s the step reaches.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .common import AMP_DTYPES, timings

__all__ = ["matmul_flops_per_s", "matmul_rates", "count_flops"]


def matmul_rates(device: str = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048,
                 repeats: int = 5) -> tuple[float, float]:  # fmt: skip
    """(FLOP per wall second, FLOP per CPU second of this process) of ``a @ b`` for n x n matrices of ``dtype``
    on ``device``: medians of ``repeats`` after a warm-up. The second leaves out time spent waiting for a core."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    torch.mm(a, b)  # warm-up: library initialisation, GPU clocks
    ((wall, cpu),) = timings([lambda: torch.mm(a, b)], repeats, device)
    return 2.0 * n**3 / wall, 2.0 * n**3 / max(cpu, 1e-9)


def matmul_flops_per_s(device: str = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048,
                       repeats: int = 5) -> float:  # fmt: skip
    """FLOP/s of ``a @ b`` for n x n matrices of ``dtype`` on ``device`` (median of ``repeats`` after a warm-up)."""
    return matmul_rates(device, dtype, n, repeats)[0]


def count_flops(function: Callable[[], object]) -> float:
    """Floating-point operations ``function()`` performs (convolutions and matrix products, forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        function()
    return float(counter.get_total_flops())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="512 x 512 instead of 2048 x 2048")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", *sorted(AMP_DTYPES)], default="fp32")
    args = parser.parse_args(argv)
    dtype = AMP_DTYPES.get(args.dtype, torch.float32)
    n = 512 if args.quick else 2048
    rate, per_cpu_s = matmul_rates(args.device, dtype, n)
    print(f"matmul {n}x{n} {args.dtype} on {args.device}: {rate / 1e9:.1f} GFLOP/s, {per_cpu_s / 1e9:.1f} GFLOP per "
          f"CPU second ({torch.get_num_threads()} torch threads)")  # fmt: skip


if __name__ == "__main__":
    main()
