"""Command line: ``python -m ssd_tutorial {train,evaluate,detect,anchors}`` (also installed as ``ssd-tutorial``).

Bad input ends with a one-line error and exit status 2, never a traceback (set SSD_TUTORIAL_DEBUG=1 to see one).

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser", "parse_data_spec"]

_SHAPES_EVAL_SEED = 1000  # held-out ShapesDataset seed: training uses --seed and --seed + 1


def parse_data_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """``shapes`` | ``voc:ROOT`` | ``coco:IMAGES_DIR,ANNOTATION_FILE`` -> (kind, arguments).

    Introduced in: 06_training.ipynb
    """
    kind, _, rest = spec.partition(":")
    if kind == "shapes" and not rest:
        return "shapes", ()
    if kind == "voc" and rest:
        return "voc", (rest,)
    if kind == "coco" and rest.count(",") == 1 and all(rest.split(",")):
        return "coco", tuple(rest.split(","))
    raise argparse.ArgumentTypeError(
        f"expected 'shapes', 'voc:ROOT' or 'coco:IMAGES_DIR,ANNOTATION_FILE', got {spec!r}"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``ssd-tutorial`` argument parser with its four sub-commands.

    Introduced in: 06_training.ipynb
    """
    from .config import PRESETS

    parser = argparse.ArgumentParser(prog="ssd-tutorial", description="Train, evaluate and run the tutorial's SSD.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,detect,anchors}")
    data_help = ("dataset: 'shapes' (generated, default), 'voc:ROOT' (folder containing VOCdevkit/) or "
                 "'coco:IMAGES_DIR,ANNOTATION_FILE'")  # fmt: skip

    t = sub.add_parser(
        "train",
        help="train a model; writes last.pt, best.pt and history.json to --out",
        description="Train SSD. Defaults come from the preset's recipe (ssd_tutorial.train.TRAIN_RECIPES).",
    )
    t.add_argument("--preset", default="tiny_shapes", choices=sorted(PRESETS), help="model configuration")
    t.add_argument("--epochs", type=_positive_int, help="epochs (default: the preset's schedule)")
    t.add_argument("--batch-size", type=_positive_int, help="images per batch and process (default: preset's)")
    t.add_argument("--lr", type=float, help="base learning rate (default: preset's)")
    t.add_argument("--optimizer", choices=("sgd", "adamw"), help="optimizer (default: preset's)")
    t.add_argument("--schedule", choices=("step", "cosine", "constant"), help="lr schedule (default: preset's)")
    t.add_argument("--warmup-iters", type=int, help="iterations of linear lr warm-up (default: preset's)")
    t.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value (default: off)")
    t.add_argument("--data", type=parse_data_spec, default=("shapes", ()), help=data_help)
    t.add_argument(
        "--val-data",
        type=parse_data_spec,
        help="validation dataset (default: shapes with seed --seed + 1, VOC's --val-split, none for COCO)",
    )
    t.add_argument("--num-train", type=_positive_int, help="shapes: training images (default: preset's)")
    t.add_argument("--num-val", type=_positive_int, help="shapes: validation images (default: preset's)")
    t.add_argument("--voc-year", default="2012", help="VOC year folder, VOCdevkit/VOC<year> (default 2012)")
    t.add_argument("--train-split", default="train", help="VOC image set to train on (default train)")
    t.add_argument("--val-split", default="val", help="VOC image set to validate on (default val)")
    t.add_argument("--eval-every", type=_positive_int, default=1, help="validate every N epochs (default 1)")
    t.add_argument("--out", type=Path, help="output folder (default runs/<preset>)")
    t.add_argument("--resume", type=Path, help="continue from a checkpoint written by train (e.g. OUT/last.pt)")
    t.add_argument("--seed", type=int, default=0, help="seed of the weights, data order and shapes data (default 0)")
    t.add_argument("--pretrained-backbone", action="store_true",
                   help="start the backbone from torchvision's ImageNet weights in the local torch hub cache "
                        "(VGG16 / ResNet-50; nothing is downloaded)")  # fmt: skip
    t.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    t.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to OUT/tb")
    t.add_argument("--clearml", metavar="PROJECT", help="report to this ClearML project (pip install clearml)")
    t.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available; cuda:LOCAL_RANK under torchrun)")
    t.add_argument(
        "--amp",
        nargs="?",
        const="fp16",
        choices=["fp16", "bf16"],
        help="mixed precision: --amp or --amp fp16 (float16 + GradScaler, CUDA only), --amp bf16 (CUDA or CPU); "
        "default: fp16 on CUDA, float32 otherwise",
    )
    t.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="train in float32, also on CUDA")
    t.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory format (default: preset's; faster convolutions on CPU)",
    )
    t.add_argument("--max-iters", type=_positive_int, help="stop each epoch after this many iterations (quick runs)")
    t.add_argument(
        "--record-indices",
        action="store_true",
        help="debug: write the sample indices each rank trained on to OUT/rank<r>_indices.json",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="VOC07 11-point, VOC all-point and COCO mAP of a checkpoint")
    e.add_argument("--checkpoint", default="tiny_shapes", help="checkpoint path or 'tiny_shapes' (default)")
    e.add_argument("--data", type=parse_data_spec, default=("shapes", ()), help=data_help)
    e.add_argument("--num-images", type=_positive_int, default=500, help="shapes: images (default 500)")
    e.add_argument(
        "--data-seed",
        type=int,
        default=_SHAPES_EVAL_SEED,
        help=f"shapes: dataset seed, held out from training (default {_SHAPES_EVAL_SEED})",
    )
    e.add_argument("--voc-year", default="2012", help="VOC year (default 2012)")
    e.add_argument("--split", default="val", help="VOC image set (default val)")
    e.add_argument("--batch-size", type=_positive_int, default=32, help="images per batch (default 32)")
    e.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    e.add_argument("--device", help="cpu, cuda … (default: cuda if available)")

    d = sub.add_parser("detect", help="draw detections on image files; writes PNGs and detections.json")
    d.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG …)")
    d.add_argument("--checkpoint", default="tiny_shapes", help="checkpoint path or 'tiny_shapes' (default)")
    d.add_argument("--out", type=Path, default=Path("detections"), help="output folder (default ./detections)")
    d.add_argument("--score-threshold", type=_probability, default=0.5, help="keep scores >= this (default 0.5)")
    d.add_argument("--device", help="cpu, cuda … (default: cuda if available)")

    a = sub.add_parser("anchors", help="print the anchor table of a preset")
    a.add_argument("--preset", default="ssd512_voc", choices=sorted(PRESETS), help="configuration (default ssd512_voc)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ssd_tutorial`` and ``ssd-tutorial``; returns the exit status.

    Introduced in: 06_training.ipynb
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"train": run_train, "evaluate": run_evaluate, "detect": run_detect, "anchors": run_anchors}[args.command]
    try:
        command(args)
    except (ValueError, TypeError, OSError, ImportError, FloatingPointError) as err:
        if os.environ.get("SSD_TUTORIAL_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"ssd-tutorial {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ssd-tutorial {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


def _device(name: str | None):
    import torch

    return torch.device(name if name is not None else ("cuda" if torch.cuda.is_available() else "cpu"))


def _dataset(spec: tuple[str, tuple[str, ...]], cfg, *, train: bool, num_images: int, seed: int, year: str,
             split: str):  # fmt: skip
    """The dataset named by ``spec`` with the train or eval transforms of ``cfg``."""
    from .data import ShapesDataset, coco_dataset, eval_transforms, train_transforms, voc_dataset

    kind, where = spec
    if kind == "shapes":
        return ShapesDataset(num_images, image_size=cfg.image_size, seed=seed)
    transforms = train_transforms(cfg) if train else eval_transforms(cfg)
    if kind == "voc":
        return voc_dataset(where[0], split, transforms, year=year)
    return coco_dataset(where[0], where[1], transforms)


def _with_classes(cfg, dataset):
    """``cfg`` with the dataset's classes (COCO files, a VOC dataset on a non-VOC preset …)."""
    names = tuple(getattr(dataset, "class_names", cfg.class_names))
    return cfg if names == cfg.class_names else cfg.replace(num_classes=len(names), class_names=names)


def _loader(dataset, batch_size: int, *, shuffle: bool, workers: int):
    from torch.utils.data import DataLoader

    from .data import collate_detection

    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      collate_fn=collate_detection, persistent_workers=workers > 0)  # fmt: skip


def run_train(args: argparse.Namespace) -> None:
    import torch

    from .config import get_config
    from .distributed import distributed_env
    from .model import build_ssd
    from .train import FIT_KEYS, TRAIN_RECIPES, fit

    cfg = get_config(args.preset)
    recipe = dict(TRAIN_RECIPES[cfg.name])
    for key in (
        "epochs",
        "lr",
        "optimizer",
        "schedule",
        "warmup_iters",
        "batch_size",
        "num_train",
        "num_val",
        "channels_last",
        "grad_clip",
    ):
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    data = dict(year=args.voc_year, num_images=recipe.get("num_train", 2000), seed=args.seed)
    train_set = _dataset(args.data, cfg, train=True, split=args.train_split, **data)
    cfg = _with_classes(cfg, train_set)
    val_spec = args.val_data if args.val_data is not None else (args.data if args.data[0] != "coco" else None)
    val_loader = None
    if val_spec is not None:
        data.update(num_images=recipe.get("num_val", 200), seed=args.seed + 1)
        val_set = _dataset(val_spec, cfg, train=False, split=args.val_split, **data)
        val_loader = _loader(val_set, recipe["batch_size"], shuffle=False, workers=args.workers)
    torch.manual_seed(args.seed)
    model = build_ssd(cfg, pretrained_backbone=args.pretrained_backbone)
    out = args.out if args.out is not None else Path("runs") / cfg.name
    is_main = distributed_env()[0] == 0
    history = fit(model, _loader(train_set, recipe["batch_size"], shuffle=True, workers=args.workers),
                  **{k: recipe[k] for k in FIT_KEYS if k in recipe}, val_loader=val_loader,
                  eval_every=args.eval_every, out_dir=out, resume=args.resume, amp=args.amp,
                  device=_device(args.device), tensorboard=args.tensorboard,
                  clearml=args.clearml, progress=not args.no_progress, seed=args.seed,
                  log_fn=print if is_main else None, max_iters=args.max_iters,
                  record_indices=args.record_indices)  # fmt: skip
    if is_main and history:
        last = history[-1]
        summary = f"mAP@0.5 {last['map']:.4f}, " if "map" in last else ""
        print(f"done: {summary}loss {last['loss']:.4f}; checkpoints in {out}/ (last.pt, best.pt)")


def run_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import coco_map, mean_average_precision
    from .train import collect_detections, load_pretrained

    device = _device(args.device)
    model = load_pretrained(args.checkpoint, device=device)
    data = dict(year=args.voc_year, num_images=args.num_images, seed=args.data_seed, split=args.split)
    dataset = _dataset(args.data, model.cfg, train=False, **data)
    if _with_classes(model.cfg, dataset) is not model.cfg:
        raise ValueError(f"the dataset's classes {list(dataset.class_names)} differ from the checkpoint's "
                         f"{list(model.cfg.class_names)}")  # fmt: skip
    loader = _loader(dataset, args.batch_size, shuffle=False, workers=args.workers)
    detections, targets = collect_detections(model, loader, device=device)
    voc07 = mean_average_precision(detections, targets, iou_threshold=0.5, method="voc07")
    allpts = mean_average_precision(detections, targets, iou_threshold=0.5, method="all_points")
    coco = coco_map(detections, targets)
    names = model.cfg.class_names
    print(f"{len(targets)} images, checkpoint {args.checkpoint}")
    print(f"{'':<16} {'VOC07 11-pt':>12} {'all-point':>10}")
    print(f"{'mAP@0.5':<16} {voc07['map']:>12.4f} {allpts['map']:>10.4f}")
    for label in sorted(allpts["ap_per_class"]):
        name = names[label] if 0 <= label < len(names) else str(label)
        print(f"{'  ' + name:<16} {voc07['ap_per_class'].get(label, float('nan')):>12.4f} "
              f"{allpts['ap_per_class'][label]:>10.4f}")  # fmt: skip
    print(f"COCO mAP@[.5:.95] {coco['map']:.4f}   AP50 {coco['map_50']:.4f}   AP75 {coco['map_75']:.4f}")


def run_detect(args: argparse.Namespace) -> None:
    import PIL.Image
    import torch
    from torchvision.transforms.v2 import functional as F
    from torchvision.utils import draw_bounding_boxes

    from .train import load_pretrained

    device = _device(args.device)
    model = load_pretrained(args.checkpoint, device=device)
    S, names = model.cfg.image_size, model.cfg.class_names
    args.out.mkdir(parents=True, exist_ok=True)
    report, used = [], set()
    for path in args.images:
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        try:
            with PIL.Image.open(path) as pil:
                image = F.pil_to_tensor(pil.convert("RGB"))  # [3, H, W] uint8
        except (OSError, SyntaxError) as err:  # PIL: unidentified, truncated or corrupt file
            raise ValueError(f"cannot read image {path}: {err}") from err
        H, W = image.shape[-2:]
        resized = F.resize(image, [S, S], antialias=True).float().div(255)  # [3, S, S] in [0, 1]
        with torch.inference_mode():
            det = model(resized[None].to(device))[0]
        keep = det["scores"] >= args.score_threshold
        boxes = det["boxes"][keep].cpu() * torch.tensor([W / S, H / S, W / S, H / S])  # back to input pixels
        scores, labels = det["scores"][keep].cpu(), det["labels"][keep].cpu()
        text = [f"{names[int(c)]} {float(s):.2f}" for c, s in zip(labels, scores)]
        stem = path.stem
        while stem in used:
            stem += "_"
        used.add(stem)
        png = args.out / f"{stem}.png"
        F.to_pil_image(draw_bounding_boxes(image, boxes, text, colors="red", width=2)).save(png)
        report.append({"image": str(path), "output": str(png), "width": int(W), "height": int(H), "detections": [
            {"label": int(c), "class_name": names[int(c)], "score": round(float(s), 5),
             "box_xyxy": [round(float(v), 2) for v in b]} for b, s, c in zip(boxes, scores, labels)]})  # fmt: skip
        print(f"{path}: {len(scores)} detections -> {png}")
    (args.out / "detections.json").write_text(json.dumps(report, indent=1))


def run_anchors(args: argparse.Namespace) -> None:
    from .anchors import format_anchor_table
    from .config import get_config

    print(format_anchor_table(get_config(args.preset)))
