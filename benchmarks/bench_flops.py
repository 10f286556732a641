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

from .common import AMP_DTYPES, median_times

__all__ = ["matmul_flops_per_s", "count_flops"]


def matmul_flops_per_s(device: str = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048,
                       repeats: int = 5) -> float:  # fmt: skip
    """FLOP/s of ``a @ b`` for n x n matrices of ``dtype`` on ``device`` (median of ``repeats`` after a warm-up)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    torch.mm(a, b)  # warm-up: library initialisation, GPU clocks
    (seconds,) = median_times([lambda: torch.mm(a, b)], repeats, device)
    return 2.0 * n**3 / seconds


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
    rate = matmul_flops_per_s(args.device, dtype, n)
    print(f"matmul {n}x{n} {args.dtype} on {args.device}: {rate / 1e9:.1f} GFLOP/s "
          f"({torch.get_num_threads()} torch threads)")  # fmt: skip


if __name__ == "__main__":
    main()
