"""Train TINY_SHAPES from scratch with its recipe and report the figures of benchmarks/RESULTS.md.

    python -m benchmarks.train_tiny_shapes [--out runs/bench_tiny] [--epochs N] [--num-train N]

Prints, as Markdown: training wall time, images/s and RSS per epoch, then VOC all-point / VOC07 mAP@0.5 and
COCO mAP on held-out shapes (seed 1000, 500 images; training uses seeds 0 and 1). Same data, model and
schedule as ``python -m ssd_tutorial train --preset tiny_shapes``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ssd_tutorial.config import TINY_SHAPES
from ssd_tutorial.data import ShapesDataset, collate_detection
from ssd_tutorial.evaluate import coco_map, mean_average_precision
from ssd_tutorial.model import build_ssd
from ssd_tutorial.train import FIT_KEYS, TRAIN_RECIPES, collect_detections, fit

HELD_OUT_SEED, HELD_OUT_IMAGES = 1000, 500


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_tiny_shapes"), help="checkpoint folder")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--num-train", type=int, help="override the recipe's training images")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, data order and training data")
    args = parser.parse_args()
    recipe = dict(TRAIN_RECIPES[TINY_SHAPES.name])
    recipe.update({k: v for k, v in (("epochs", args.epochs), ("num_train", args.num_train)) if v is not None})
    S, bs = TINY_SHAPES.image_size, recipe["batch_size"]
    train = DataLoader(ShapesDataset(recipe["num_train"], image_size=S, seed=args.seed), batch_size=bs,
                       shuffle=True, collate_fn=collate_detection)  # fmt: skip
    val = DataLoader(ShapesDataset(recipe["num_val"], image_size=S, seed=args.seed + 1), batch_size=bs,
                     collate_fn=collate_detection)  # fmt: skip
    torch.manual_seed(args.seed)
    model = build_ssd(TINY_SHAPES)
    rows: list[str] = []
    start = time.perf_counter()

    def log(line: str) -> None:
        rows.append(f"| {time.perf_counter() - start:7.1f} | {rss_mb():7.0f} | {line} |")
        print(rows[-1], flush=True)

    history = fit(model, train, **{k: recipe[k] for k in FIT_KEYS if k in recipe}, val_loader=val,
                  out_dir=args.out, seed=args.seed, progress=False, log_fn=log)  # fmt: skip
    wall = time.perf_counter() - start
    train_time = sum(recipe["num_train"] / h["images_per_s"] for h in history)
    held_out = DataLoader(ShapesDataset(HELD_OUT_IMAGES, image_size=S, seed=HELD_OUT_SEED), batch_size=50,
                          collate_fn=collate_detection)  # fmt: skip
    eval_start = time.perf_counter()
    detections, targets = collect_detections(model, held_out)
    eval_time = time.perf_counter() - eval_start
    all_points = mean_average_precision(detections, targets, method="all_points")
    voc07 = mean_average_precision(detections, targets, method="voc07")
    coco = coco_map(detections, targets)
    threads, cpus = torch.get_num_threads(), os.cpu_count()
    print(f"\nrecipe: {recipe}; torch threads {threads}, os.cpu_count() {cpus}, load average {os.getloadavg()}")
    print(f"wall (training + per-epoch validation + checkpoints) {wall:.1f} s; training only {train_time:.1f} s; "
          f"mean {recipe['epochs'] * recipe['num_train'] / train_time:.1f} images/s")  # fmt: skip
    print(f"held-out seed {HELD_OUT_SEED}, {HELD_OUT_IMAGES} images (eval {eval_time:.1f} s): VOC all-point mAP@0.5 "
          f"{all_points['map']:.4f} {all_points['ap_per_class']}, VOC07 {voc07['map']:.4f}, COCO {coco['map']:.4f} "
          f"(AP50 {coco['map_50']:.4f})")  # fmt: skip


if __name__ == "__main__":
    main()
