"""The fast paths (ssd_tutorial.fast) vs the taught versions and torchvision, timed in turns in one process.

    python -m benchmarks.bench_fast_paths [--threads N] [--repeats 15]

Same inputs as ``benchmarks.run``'s target-encoding and detection lines (SSD300 anchors, B = 32). Each
repeat runs every function once, in turn, so machine load affects them alike; prints medians and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from ssd_tutorial import fast, matching, postprocess
from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy
from ssd_tutorial.config import SSD300_VOC

from .bench_encode_targets import make_targets, torchvision_targets
from .bench_postprocess import REGIMES, _regime_inputs, _torchvision_postprocess


def medians_ms(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function in ms, after one warm-up call each; the functions take turns."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def main(argv: list[str] | None = None) -> list[tuple[str, dict[str, float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = SSD300_VOC
    anchors = default_boxes(cfg)
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    targets = make_targets(args.batch, 10, cfg.image_size, cfg.num_classes, 0, "cpu")
    lines = [("target encoding, 10 boxes/img", {
        "fast": lambda: fast.encode_targets(targets, anchors, cfg),
        "taught": lambda: matching.encode_targets(targets, anchors, cfg),
        "torchvision": lambda: torchvision_targets(targets, anchors_xyxy),
    })]  # fmt: skip
    for regime, (scale, shift) in REGIMES.items():
        loc, logits = _regime_inputs(cfg, args.batch, scale, shift)
        lines.append((f"detections, {regime}", {
            "fast": lambda loc=loc, logits=logits: fast.decode_detections(loc, logits, anchors, cfg),
            "taught": lambda loc=loc, logits=logits: postprocess.decode_detections(loc, logits, anchors, cfg),
            "torchvision": lambda loc=loc, logits=logits: _torchvision_postprocess(cfg, anchors_xyxy, loc, logits),
        }))  # fmt: skip
    print(f"B={args.batch}, {cfg.name} ({anchors.shape[0]} anchors), torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats}")  # fmt: skip
    results = []
    with torch.inference_mode():
        for what, functions in lines:
            ms = medians_ms(functions, args.repeats)
            print(f"{what}: fast {ms['fast']:.1f} ms, taught {ms['taught']:.1f} ms, torchvision "
                  f"{ms['torchvision']:.1f} ms; fast is {ms['taught'] / ms['fast']:.1f}x the taught speed, "
                  f"{ms['torchvision'] / ms['fast']:.2f}x torchvision's", flush=True)  # fmt: skip
            results.append((what, ms))
    return results


if __name__ == "__main__":
    main()
