"""fast.decode_detections (what the model uses) vs torchvision's SSD.postprocess_detections on the same head outputs.

B = 32, SSD300 (8732 anchors), 21 classes, the same rules (score > 0.01, top 400 per class, NMS 0.45,
200 per image). Both must give the same detections before they are timed; prints the median times
and the ratio. ``python -m benchmarks.run`` also times the taught ``postprocess.decode_detections``.

    .venv/bin/python -m benchmarks.bench_postprocess [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.ssd import SSD as TorchvisionSSD

from ssd_tutorial import postprocess
from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy
from ssd_tutorial.config import SSD300_VOC, SSDConfig
from ssd_tutorial.fast import decode_detections

from .common import BenchOptions, Comparison, Mismatch, same_detections

# Random head outputs (logits * scale, background logit + shift) with few to many candidates (scores
# above 0.01): "sparse" ~20 per image (a confident trained model), "medium" ~4300 per image,
# "dense" 8000 per image (400 for each of the 20 classes: an untrained model).
REGIMES = {"sparse": (2.0, 12.0), "medium": (2.0, 10.0), "dense": (1.0, 0.0)}  # (logit scale, background shift)


def _median_seconds(fns: list[Callable[[], object]], repeats: int) -> list[tuple[float, float]]:
    """Median (wall, CPU) seconds of each function; runs alternate so both see the same machine load.

    CPU time (all threads of this process) is less sensitive to other processes than wall time.
    """
    times: list[list[tuple[float, float]]] = [[] for _ in fns]
    for fn in fns:
        fn()  # warm-up
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for t in times]


def _same(ours: list[dict], theirs: list[dict]) -> bool:
    """Same detections per image, up to the order of exactly tied scores."""
    try:
        same_detections(ours, theirs)
    except Mismatch:
        return False
    return True


def _regime_inputs(cfg: SSDConfig, batch_size: int, scale: float, shift: float,
                   device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    g = torch.Generator().manual_seed(0)
    loc_preds = torch.randn(batch_size, cfg.num_anchors, 4, generator=g)
    cls_logits = torch.randn(batch_size, cfg.num_anchors, cfg.num_classes, generator=g) * scale
    cls_logits[..., 0] += shift
    return loc_preds.to(device), cls_logits.to(device)


def _torchvision_postprocess(cfg: SSDConfig, anchors_xyxy: torch.Tensor, loc_preds: torch.Tensor,
                             cls_logits: torch.Tensor) -> list[dict]:  # fmt: skip
    fake_self = SimpleNamespace(box_coder=BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)), score_thresh=cfg.score_threshold,
                                topk_candidates=cfg.pre_nms_top_k, nms_thresh=cfg.nms_threshold,
                                detections_per_img=cfg.max_detections)  # fmt: skip
    B = loc_preds.shape[0]
    head_outputs = {"bbox_regression": loc_preds, "cls_logits": cls_logits}
    return TorchvisionSSD.postprocess_detections(fake_self, head_outputs, [anchors_xyxy] * B,
                                                 [(cfg.image_size, cfg.image_size)] * B)  # fmt: skip


def comparisons(opts: BenchOptions) -> Iterator[Comparison]:
    """The detection lines of ``python -m benchmarks.run``: one per regime, B = 32 (2 with ``quick``)."""
    cfg = SSD300_VOC
    batch = 2 if opts.quick else 32
    anchors = default_boxes(cfg).to(opts.device)
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    for regime, (scale, shift) in REGIMES.items():
        loc_preds, cls_logits = _regime_inputs(cfg, batch, scale, shift, opts.device)
        candidates = int((cls_logits.softmax(-1)[..., 1:] > cfg.score_threshold).sum()) // batch

        def ours(loc_preds=loc_preds, cls_logits=cls_logits) -> list[dict]:
            with torch.inference_mode():
                return decode_detections(loc_preds, cls_logits, anchors, cfg)

        def theirs(loc_preds=loc_preds, cls_logits=cls_logits) -> list[dict]:
            with torch.inference_mode():
                return _torchvision_postprocess(cfg, anchors_xyxy, loc_preds, cls_logits)

        def taught(loc_preds=loc_preds, cls_logits=cls_logits) -> list[dict]:
            with torch.inference_mode():
                return postprocess.decode_detections(loc_preds, cls_logits, anchors, cfg)

        what = f"detections, B={batch}, {cfg.name}, {cfg.num_classes} classes, {regime} ({candidates} cand./img)"
        yield Comparison(what=what, ours_name="fast.decode_detections", theirs_name="SSD.postprocess_detections",
                         ours=ours, theirs=theirs, same=same_detections, goal=2.0)  # fmt: skip
        yield Comparison(what=f"taught {what}", ours_name="postprocess.decode_detections",
                         theirs_name="SSD.postprocess_detections", ours=taught, theirs=theirs,
                         same=same_detections)  # fmt: skip


def run(quick: bool = False, batch_size: int = 32) -> list[dict]:
    """Time both implementations in each regime; returns one dict per regime."""
    cfg = SSD300_VOC
    anchors = default_boxes(cfg)
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    repeats = 3 if quick else 7
    results = []
    for regime, (scale, shift) in REGIMES.items():
        loc_preds, cls_logits = _regime_inputs(cfg, batch_size, scale, shift)

        def ours(loc_preds=loc_preds, cls_logits=cls_logits) -> list[dict]:
            return decode_detections(loc_preds, cls_logits, anchors, cfg)

        def theirs(loc_preds=loc_preds, cls_logits=cls_logits) -> list[dict]:
            return _torchvision_postprocess(cfg, anchors_xyxy, loc_preds, cls_logits)

        with torch.no_grad():
            a, b = ours(), theirs()
            if not _same(a, b):
                raise RuntimeError(f"{regime}: decode_detections and torchvision disagree; not timing")
            (t_ours, cpu_ours), (t_theirs, cpu_theirs) = _median_seconds([ours, theirs], repeats)
        candidates = int((cls_logits.softmax(-1)[..., 1:] > cfg.score_threshold).sum()) // batch_size
        results.append({"regime": regime, "batch_size": batch_size, "candidates_per_image": candidates,
                        "detections": sum(len(d["scores"]) for d in a),
                        "ours_s": t_ours, "torchvision_s": t_theirs, "speedup": t_theirs / t_ours,
                        "ours_cpu_s": cpu_ours, "torchvision_cpu_s": cpu_theirs,
                        "cpu_speedup": cpu_theirs / cpu_ours})  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"postprocess, SSD300 (8732 anchors, 21 classes), batch {args.batch_size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of repeats")  # fmt: skip
    for r in run(quick=args.quick, batch_size=args.batch_size):
        print(f"{r['regime']:>7}: {r['candidates_per_image']:>6} candidates/image, {r['detections']} detections\n"
              f"         wall: ours {r['ours_s'] * 1e3:8.1f} ms  torchvision {r['torchvision_s'] * 1e3:8.1f} ms"
              f"  speed-up x{r['speedup']:.2f}\n"
              f"          cpu: ours {r['ours_cpu_s'] * 1e3:8.1f} ms  torchvision {r['torchvision_cpu_s'] * 1e3:8.1f} ms"
              f"  speed-up x{r['cpu_speedup']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
