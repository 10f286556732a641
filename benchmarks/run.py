"""Run every benchmark line, print one table and write it to benchmarks/RESULTS.md.

    python -m benchmarks.run [--quick] [--no-write] [--device cuda --amp bf16|fp16 --channels-last]
                             [--models tiny_shapes,ssd300_voc,ssd512_voc] [--train-batch N] [--infer-batch N]

Each line runs ours and torchvision's equivalent on identical inputs in this process, checks that they give
the same result, then reports the median wall time of alternating repeats, the ratio, the ratio of CPU times
and the peak memory of one call. ``--quick`` uses tiny sizes (seconds; CI runs it through the tests) and does
not write RESULTS.md unless ``--write`` is given. The exit status is 1 if any line's check failed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from . import bench_encode_targets, bench_inference, bench_map, bench_postprocess, bench_train_step
from .bench_flops import matmul_rates
from .common import AMP_DTYPES, BenchOptions, Comparison, Result, compare, machine_info, write_section

__all__ = ["main", "run", "SECTIONS"]

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTIONS: dict[str, Callable[[BenchOptions], Iterator[Comparison]]] = {
    "encode": bench_encode_targets.comparisons,
    "detections": bench_postprocess.comparisons,
    "train": bench_train_step.comparisons,
    "inference": bench_inference.comparisons,
    "map": bench_map.comparisons,
}


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    if not math.isfinite(ms):
        return "–"
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def _x(ratio: float) -> str:
    return f"{ratio:.2f}×" if math.isfinite(ratio) else "–"


def _mb(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else "n/a"


def _progress(r: Result) -> str:
    if not r.ok:
        return f"{r.what}: {r.same}"
    return (f"{r.what}: ours {_ms(r.ours_s)} ms, torchvision {_ms(r.theirs_s)} ms, {_x(r.speedup)} "
            f"(CPU time {_x(r.cpu_speedup)}); {r.same}")  # fmt: skip


def run(opts: BenchOptions, sections: tuple[str, ...] = (*SECTIONS, "flops", "fit"),
        log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """Run the chosen sections; returns ``{"results": [Result], "matmul_flops": float | None, "fit": dict | None}``."""
    results: list[Result] = []
    for section in sections:
        if section not in SECTIONS:
            continue
        lines = SECTIONS[section](opts)
        while True:
            try:
                comparison = next(lines)
            except StopIteration:
                break
            except Exception as err:  # a line that cannot even be built is reported, the others still run
                results.append(Result(what=f"{section} (setup)", ours_name="", theirs_name="", ok=False,
                                      same=f"ERROR: {type(err).__name__}: {err}"))  # fmt: skip
                log(traceback.format_exc())
                break
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torchmetrics / pycocotools chatter
                    result = compare(comparison, opts)
            except Exception as err:
                result = Result(what=comparison.what, ours_name=comparison.ours_name,
                                theirs_name=comparison.theirs_name, ok=False,
                                same=f"ERROR: {type(err).__name__}: {err}")  # fmt: skip
                log(traceback.format_exc())
            del comparison
            results.append(result)
            log(_progress(result))
    out: dict[str, Any] = {"results": results, "matmul_flops": None, "fit": None}
    if "flops" in sections:
        dtype = AMP_DTYPES.get(opts.amp, torch.float32) if torch.device(opts.device).type == "cuda" else torch.float32
        out["matmul_dtype"] = str(dtype).removeprefix("torch.")
        out["matmul_n"] = 512 if opts.quick else (8192 if torch.device(opts.device).type == "cuda" else 2048)
        out["matmul_flops"], out["matmul_flops_cpu"] = matmul_rates(opts.device, dtype, out["matmul_n"],
                                                                    repeats=3 if opts.quick else 5)  # fmt: skip
        log(f"matmul {out['matmul_n']}² {out['matmul_dtype']}: {out['matmul_flops'] / 1e9:.1f} GFLOP/s")
    if "fit" in sections:
        out["fit"] = bench_train_step.fit_throughput(opts)
        log(f"fit TINY_SHAPES: {out['fit']['images_per_s']:.1f} images/s")
    return out


def to_markdown(out: dict[str, Any], opts: BenchOptions, info: dict[str, str], seconds: float,
                title: str = "Side by side with torchvision (`make bench`)") -> str:  # fmt: skip
    """The section of RESULTS.md: machine, the side-by-side table, throughput, FLOP/s and notes."""
    results: list[Result] = out["results"]
    amp = opts.amp or "float32"
    lines = [
        f"## {title}",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- device {opts.device}, precision {amp}{', channels_last' if opts.channels_last else ''}; "
        f"whole run {seconds / 60:.1f} min{' (--quick sizes)' if opts.quick else ''}",
        "",
        "Times are medians of alternating repeats (ours, torchvision, ours, …) after a first call that checks both "
        "results agree; speed-up = torchvision / ours (> 1: ours is faster), in wall time and in this process's "
        "CPU time. Peak memory: the most one call added above what was allocated before it (CPU: peak RSS, "
        "reset before the call; CUDA: `max_memory_allocated`).",
        "",
        "| line | ours | torchvision | ours ms | tv ms | speed-up | CPU-time speed-up | goal | same result "
        "| peak MB ours / tv |",
        "|---|---|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in results:
        goal = "–" if r.goal is None else (f"≥ {r.goal:g}× " + ("met" if r.ok and r.speedup >= r.goal else "not met"))
        lines.append(f"| {r.what} | `{r.ours_name}` | {r.theirs_name} | {_ms(r.ours_s)} | {_ms(r.theirs_s)} "
                     f"| {_x(r.speedup)} | {_x(r.cpu_speedup)} | {goal} | {r.same} "
                     f"| {_mb(r.ours_mb)} / {_mb(r.theirs_mb)} |")  # fmt: skip
    image_lines = [r for r in results if r.images and r.ok]
    if image_lines:
        lines += ["", "### Images per second", "", "| line | ours | torchvision |", "|---|---:|---:|"]
        lines += [f"| {r.what} | {r.images / r.ours_s:.3g} | {r.images / r.theirs_s:.3g} |" for r in image_lines]
    if out["fit"] is not None:
        fit = out["fit"]
        lines += ["", f"`fit` on TINY_SHAPES with its recipe (ShapesDataset generated on the fly in the main process, "
                      f"batch {fit['batch']}, {fit['iterations']} iterations, {opts.device}): "
                      f"**{fit['images_per_s']:.1f} images/s**. Time to mAP@0.5 ≥ 0.90: see the section "
                      f"\"Training TINY_SHAPES on CPU\" (`python -m benchmarks.train_tiny_shapes`)."]  # fmt: skip
    if out["matmul_flops"]:
        peak, peak_cpu = out["matmul_flops"], out["matmul_flops_cpu"]
        lines += ["", "### FLOP/s", "",
                  f"Matrix product {out['matmul_n']}×{out['matmul_n']} {out['matmul_dtype']} on this machine: "
                  f"**{peak / 1e9:.1f} GFLOP/s** (2n³ FLOPs / median wall time; {peak_cpu / 1e9:.1f} GFLOP per CPU "
                  f"second of this process). Train-step FLOPs counted with `torch.utils.flop_counter.FlopCounterMode` "
                  f"(convolutions and matrix products, forward and backward, one image × batch). Share of matmul: "
                  f"by wall time, and by CPU time (FLOP per CPU second of the step / of the matrix product). oneDNN "
                  f"convolutions can beat a {out['matmul_n']}² product, so a share may exceed 100 %."]  # fmt: skip
        flop_lines = [r for r in results if r.flops and r.ok]
        if flop_lines:
            lines += ["", "| train step | GFLOP per step | ours GFLOP/s | share (wall / CPU time) | tv GFLOP/s "
                          "| share (wall / CPU time) |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
            for r in flop_lines:
                ours, theirs = r.flops / r.ours_s, r.flops / r.theirs_s
                ours_cpu, theirs_cpu = r.flops / r.ours_cpu_s / peak_cpu, r.flops / r.theirs_cpu_s / peak_cpu
                share, theirs_share = f"{ours / peak:.0%} / {ours_cpu:.0%}", f"{theirs / peak:.0%} / {theirs_cpu:.0%}"
                lines.append(f"| {r.what} | {r.flops / 1e9:.1f} | {ours / 1e9:.1f} | {share} | {theirs / 1e9:.1f} "
                             f"| {theirs_share} |")  # fmt: skip
    notes = sorted({f"{r.what.split(',')[0]}: {r.note}" for r in results if r.note})
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        lines += ["", f"Load average at the end: {load} (other jobs may share the cores: wall and CPU-time ratios "
                      f"both move with the load)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run, print the Markdown section and write it to RESULTS.md; returns what ``run`` returns."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds in total (CI)")
    write = parser.add_mutually_exclusive_group()
    write.add_argument("--write", dest="write", action="store_true", default=None, help="write RESULTS.md")
    write.add_argument("--no-write", dest="write", action="store_false", help="only print")
    parser.add_argument("--results", type=Path, default=RESULTS, help="file to write the section into")
    parser.add_argument("--section", default="bench", help="marker name of the section in that file: "
                                                           "<!-- NAME:start --> … <!-- NAME:end -->")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--amp", choices=sorted(AMP_DTYPES), help="time with autocast in this dtype (checks run fp32)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last models and images")
    parser.add_argument("--models", help="presets for train/inference lines (default: tiny_shapes,ssd300_voc; "
                                         "on CUDA also ssd512_voc)")  # fmt: skip
    parser.add_argument("--train-batch", type=int, help="batch of train steps (default: 32 on CUDA; CPU: 32 tiny, "
                                                        "2 SSD300, 1 SSD512)")  # fmt: skip
    parser.add_argument("--infer-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per side (slow lines use at least 3)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for this run (default: torch's)")
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join([*SECTIONS, 'flops', 'fit'])}")
    args = parser.parse_args(argv)
    cuda = torch.device(args.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    if args.amp == "fp16" and not cuda:
        parser.error("--amp fp16 needs a CUDA device (float16 autocast with GradScaler); use --amp bf16 on a CPU")
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input sizes
    if args.threads:
        torch.set_num_threads(args.threads)
    default_models = "tiny_shapes,ssd300_voc,ssd512_voc" if cuda else "tiny_shapes,ssd300_voc"
    opts = BenchOptions(quick=args.quick, device=args.device, amp=args.amp, channels_last=args.channels_last,
                        repeats=args.repeats, train_batch=args.train_batch, infer_batch=args.infer_batch,
                        models=tuple((args.models or default_models).split(",")))  # fmt: skip
    if args.quick and args.models is None:
        opts = BenchOptions(**{**opts.__dict__, "models": ("tiny_shapes",)})
    sections = tuple(args.only.split(",")) if args.only else (*SECTIONS, "flops", "fit")
    info = machine_info(args.device)
    start = time.perf_counter()
    out = run(opts, sections, log=lambda line: print(line, flush=True))
    title = "Side by side with torchvision (`make bench`)"
    if cuda:
        title = (f"Side by side with torchvision on {torch.cuda.get_device_name(args.device)}, "
                 f"{args.amp or 'float32'}{' + channels_last' if args.channels_last else ''}")  # fmt: skip
    elif args.threads:
        title = f"Side by side with torchvision, {args.threads} torch thread{'s' if args.threads > 1 else ''}"
    markdown = to_markdown(out, opts, info, time.perf_counter() - start, title)
    print("\n" + markdown)
    if args.write if args.write is not None else not args.quick:
        write_section(args.results, markdown, f"<!-- {args.section}:start -->", f"<!-- {args.section}:end -->")
        print(f"written to {args.results}")
    return out


if __name__ == "__main__":
    sys.exit(0 if all(r.ok for r in main()["results"]) else 1)
