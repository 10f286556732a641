"""Command line: ``python -m ssd_tutorial {train,evaluate,detect,anchors}`` (also installed as ``ssd-tutorial``).

Bad input ends with one line on stderr (``ssd-tutorial <command>: error: ...``) and exit status 2, never a
traceback (``--debug`` or SSD_TUTORIAL_DEBUG=1 shows one). Ctrl-C exits with 130 and SIGTERM with 143, after
``train`` has written a resumable ``last.pt``.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
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
    raise argparse.ArgumentTypeError(f"expected 'shapes', 'voc:ROOT' or 'coco:IMAGES_DIR,ANNOTATION_FILE', "
                                     f"got {spec!r}")


def _number(kind: type, low: float, low_open: bool, high: float | None = None):
    """An argparse type: ``kind`` within (low | [low, high]; the error names the range."""
    what = f"{'an integer' if kind is int else 'a number'} {'>' if low_open else '>='} {low:g}"
    what += f" and <= {high:g}" if high is not None else ""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or (value <= low if low_open else value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


_positive_int, _count = _number(int, 0, True), _number(int, 0, False)
_positive, _probability = _number(float, 0.0, True), _number(float, 0.0, False, 1.0)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``ssd-tutorial`` argument parser with its four sub-commands.

    Introduced in: 06_training.ipynb
    """
    from .config import PRESETS

    parser = _Parser(prog="ssd-tutorial", description="Train, evaluate and run the tutorial's SSD.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,detect,anchors}")
    data_help = ("dataset: 'shapes' (generated, default), 'voc:ROOT' (folder containing VOCdevkit/) or "
                 "'coco:IMAGES_DIR,ANNOTATION_FILE'")  # fmt: skip

    t = sub.add_parser("train", parents=[debug], help="train a model; writes last.pt, best.pt, history.json to --out",
                       description="Train SSD. Defaults: the preset's recipe (ssd_tutorial.train.TRAIN_RECIPES).")
    t.add_argument("--preset", default="tiny_shapes", choices=sorted(PRESETS), help="model configuration")
    t.add_argument("--epochs", type=_positive_int, help="epochs (default: the preset's schedule)")
    t.add_argument("--batch-size", type=_positive_int, help="images per batch and process (default: preset's)")
    t.add_argument("--lr", type=_positive, help="base learning rate, > 0 (default: preset's)")
    t.add_argument("--optimizer", choices=("sgd", "adamw"), help="optimizer (default: preset's)")
    t.add_argument("--schedule", choices=("step", "cosine", "constant"), help="lr schedule (default: preset's)")
    t.add_argument("--warmup-iters", type=_count, help="iterations of linear lr warm-up, >= 0 (default: preset's)")
    t.add_argument("--grad-clip", type=_positive, help="clip the gradient norm to this value, > 0 (default: off)")
    t.add_argument("--data", type=parse_data_spec, default=("shapes", ()), help=data_help)
    t.add_argument("--val-data", type=parse_data_spec,
                   help="validation data (default: shapes with seed --seed + 1, VOC's --val-split, none for COCO)")
    t.add_argument("--num-train", type=_positive_int, help="shapes: training images (default: preset's)")
    t.add_argument("--num-val", type=_positive_int, help="shapes: validation images (default: preset's)")
    t.add_argument("--voc-year", default="2012", help="VOC year folder, VOCdevkit/VOC<year> (default 2012)")
    t.add_argument("--train-split", default="train", help="VOC image set to train on (default train)")
    t.add_argument("--val-split", default="val", help="VOC image set to validate on (default val)")
    t.add_argument("--eval-every", type=_positive_int, default=1, help="validate every N epochs (default 1)")
    t.add_argument("--out", type=Path, help="output folder (default runs/<preset>)")
    t.add_argument("--resume", type=Path, help="continue from a checkpoint written by train (e.g. OUT/last.pt)")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --out instead of refusing")
    t.add_argument("--seed", type=_count, default=0, help="seed of the weights, data order and shapes data (default 0)")
    t.add_argument("--pretrained-backbone", action="store_true",
                   help="start the backbone from torchvision's ImageNet weights (VGG16 / ResNet-50): the torch hub "
                        "cache when they are there, else downloaded with torchvision's hash check")  # fmt: skip
    t.add_argument("--workers", type=_count, default=0, help="DataLoader worker processes (default 0)")
    t.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to OUT/tb")
    t.add_argument("--clearml", metavar="PROJECT", help="report to this ClearML project (pip install clearml)")
    t.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available; cuda:LOCAL_RANK under torchrun)")
    t.add_argument("--amp", nargs="?", const="fp16", choices=["fp16", "bf16"],
                   help="mixed precision: --amp or --amp fp16 (float16 + GradScaler, CUDA only), --amp bf16 (CUDA or "
                        "CPU); default: fp16 on CUDA, float32 otherwise")  # fmt: skip
    t.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="train in float32, also on CUDA")
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last memory format (default: preset's; faster convolutions on CPU)")  # fmt: skip
    t.add_argument("--max-iters", type=_positive_int, help="stop each epoch after this many iterations (quick runs)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", parents=[debug], help="VOC07 11-point, VOC all-point and COCO mAP of a checkpoint")
    e.add_argument("--checkpoint", default="tiny_shapes", help="checkpoint path or 'tiny_shapes' (default)")
    e.add_argument("--data", type=parse_data_spec, default=("shapes", ()), help=data_help)
    e.add_argument("--num-images", type=_positive_int, default=500, help="shapes: images (default 500)")
    e.add_argument("--data-seed", type=_count, default=_SHAPES_EVAL_SEED,
                   help=f"shapes: dataset seed, held out from training (default {_SHAPES_EVAL_SEED})")  # fmt: skip
    e.add_argument("--voc-year", default="2012", help="VOC year (default 2012)")
    e.add_argument("--split", default="val", help="VOC image set (default val)")
    e.add_argument("--batch-size", type=_positive_int, default=32, help="images per batch (default 32)")
    e.add_argument("--workers", type=_count, default=0, help="DataLoader worker processes (default 0)")
    e.add_argument("--device", help="cpu, cuda … (default: cuda if available)")

    d = sub.add_parser("detect", parents=[debug], help="draw detections on image files; writes PNGs, detections.json")
    d.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG …)")
    d.add_argument("--checkpoint", default="tiny_shapes", help="checkpoint path or 'tiny_shapes' (default)")
    d.add_argument("--out", type=Path, default=Path("detections"), help="output folder (default ./detections)")
    d.add_argument("--score-threshold", type=_probability, default=0.5, help="keep scores >= this (default 0.5)")
    d.add_argument("--device", help="cpu, cuda … (default: cuda if available)")

    a = sub.add_parser("anchors", parents=[debug], help="print the anchor table of a preset")
    a.add_argument("--preset", default="ssd512_voc", choices=sorted(PRESETS), help="configuration (default ssd512_voc)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ssd_tutorial`` and ``ssd-tutorial``; returns the exit status.

    Introduced in: 06_training.ipynb
    """
    args = build_parser().parse_args(argv)
    debug = args.debug or bool(os.environ.get("SSD_TUTORIAL_DEBUG"))
    command = {"train": run_train, "evaluate": run_evaluate, "detect": run_detect, "anchors": run_anchors}[args.command]
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    if previous is not None:  # SIGTERM ends like Ctrl-C: with a message (and train's last.pt), not as status -15
        signal.signal(signal.SIGTERM, _terminate)
    try:
        command(args)
    except KeyboardInterrupt as err:
        if debug:
            raise
        signum = getattr(err, "signum", None) or signal.SIGINT
        print(f"ssd-tutorial {args.command}: {str(err) or 'interrupted'}", file=sys.stderr)
        return 128 + signum
    except (ValueError, TypeError, OSError, ImportError, FloatingPointError, RuntimeError) as err:
        if debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"ssd-tutorial {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _terminate(signum: int, frame) -> None:
    interrupt = KeyboardInterrupt(f"interrupted by {signal.Signals(signum).name}")  # fit turns it into a last.pt
    interrupt.signum = signum
    raise interrupt


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def _device(name: str | None):
    import torch

    from .distributed import resolve_device

    return resolve_device(name) if name is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def _model(checkpoint: str, device):
    """The model of ``checkpoint``, after saying which classes it knows (and what the shipped one is for)."""
    from .checkpoints import load_pretrained

    model = load_pretrained(checkpoint, device=device)
    print(f"model knows: {', '.join(model.cfg.class_names[1:])}")
    if checkpoint == "tiny_shapes":
        _note("the shipped tiny_shapes model only knows generated shapes (circles, squares, triangles on noise); "
              "it will not find objects in photos - train your own for those")  # fmt: skip
    return model


def run_train(args: argparse.Namespace) -> None:
    import torch

    from .checkpoints import check_run_folder, run_lock
    from .config import get_config
    from .distributed import distributed_env
    from .model import build_ssd
    from .train import FIT_KEYS, TRAIN_RECIPES, fit

    cfg = get_config(args.preset)
    recipe = dict(TRAIN_RECIPES[cfg.name])
    keys = ("epochs", "lr", "optimizer", "schedule", "warmup_iters", "batch_size", "num_train", "num_val",
            "channels_last", "grad_clip")  # fmt: skip
    recipe.update({key: getattr(args, key) for key in keys if getattr(args, key) is not None})
    device = _device(args.device)
    out = args.out if args.out is not None else Path("runs") / cfg.name
    is_main = distributed_env()[0] == 0
    with run_lock(out if is_main else None, note=_note):  # the folder is checked and held before data is loaded
        if is_main:
            check_run_folder(out, resume=args.resume, overwrite=args.overwrite, epochs=recipe["epochs"])
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
        history = fit(model, _loader(train_set, recipe["batch_size"], shuffle=True, workers=args.workers),
                      **{k: recipe[k] for k in FIT_KEYS if k in recipe}, val_loader=val_loader,
                      eval_every=args.eval_every, out_dir=out, resume=args.resume, amp=args.amp, device=device,
                      tensorboard=args.tensorboard, clearml=args.clearml, progress=not args.no_progress,
                      seed=args.seed, log_fn=print if is_main else None, max_iters=args.max_iters)  # fmt: skip
    if is_main and history:
        last = history[-1]
        summary = f"mAP@0.5 {last['map']:.4f}, " if "map" in last else ""
        print(f"done: {summary}loss {last['loss']:.4f}; checkpoints in {out}/ (last.pt, best.pt)")


def run_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import coco_map, mean_average_precision
    from .train import collect_detections

    device = _device(args.device)
    model = _model(args.checkpoint, device)
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
    from .drawing import check_image, detect_to_files

    for path in args.images:  # every image is checked before anything is loaded or written
        check_image(path)
    device = _device(args.device)
    model = _model(args.checkpoint, device)
    for item in detect_to_files(model, args.images, args.out, score_threshold=args.score_threshold, device=device):
        print(f"{item['image']}: {len(item['detections'])} detections -> {item['output']}")


def run_anchors(args: argparse.Namespace) -> None:
    from .anchors import format_anchor_table
    from .config import get_config

    print(format_anchor_table(get_config(args.preset)))
