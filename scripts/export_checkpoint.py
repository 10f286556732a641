"""Shrink a training checkpoint to what inference needs: weights, config, class names and a metrics summary.

    python scripts/export_checkpoint.py runs/tiny_shapes_release/best.pt ssd_tutorial/pretrained/tiny_shapes.pt [--half]

Drops the optimizer, scheduler and RNG states; ``--half`` stores floating-point weights as float16
(``load_pretrained`` copies them back into float32 parameters). The output loads with
``ssd_tutorial.load_pretrained(path)`` and ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssd_tutorial.checkpoints import load_checkpoint, load_pretrained, write_atomic


def export(src: Path, dst: Path, half: bool = False) -> Path:
    checkpoint = load_checkpoint(src)
    if checkpoint.get("config") is None:
        raise ValueError(f"{src} has no config; export needs a checkpoint written by fit / save_checkpoint")
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    history = checkpoint.get("metrics", {}).get("history", [])
    slim = {
        "model": state,
        "epoch": checkpoint.get("epoch", 0),
        "config": checkpoint["config"],
        "class_names": checkpoint.get("class_names"),
        "metrics": {"best": checkpoint.get("metrics", {}).get("best"), "history": history},
        "extra": {"exported_from": src.name, "dtype": "float16" if half else "float32"},
    }
    write_atomic(dst, slim)
    load_pretrained(dst)  # the exported file must rebuild a model
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="checkpoint written by fit (e.g. runs/NAME/best.pt)")
    parser.add_argument("dst", type=Path, help="output file (e.g. ssd_tutorial/pretrained/tiny_shapes.pt)")
    parser.add_argument("--half", action="store_true", help="store floating-point weights as float16")
    args = parser.parse_args(argv)
    try:
        out = export(args.src, args.dst, half=args.half)
    except (ValueError, OSError) as err:
        print(f"export_checkpoint: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
