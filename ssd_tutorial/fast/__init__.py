"""Fast paths: measured speed-ups of matching / target encoding and of detections, proven equal to the taught code.

The taught versions (:mod:`ssd_tutorial.matching`, :mod:`ssd_tutorial.postprocess`) state each rule as
plainly as torchvision does; the functions here give the same results (tests/test_fast.py checks it on
many random cases: exact IoU ties, empty images, more boxes than anchors, duplicate boxes, all-background
scores) and are what :class:`ssd_tutorial.SSD` uses by default (``model.use_fast_paths = False`` switches
to the taught ones). Each module's docstring explains its tricks.

* :func:`encode_targets` / :func:`match_anchors` (:mod:`.matching`): blocked IoU maxima instead of the
  [B, M, A] IoU tensor, greedy rounds only for images where two boxes share their best anchor.
* :func:`decode_detections` (:mod:`.postprocess`): each image's best scores first, only those decoded,
  NMS slice by slice on a CPU.

How much they buy (SSD300 anchors, B = 32, 10 boxes per image; the detection regimes of benchmarks/):

* against the taught versions, ``python -m benchmarks.bench_fast_paths --threads 1`` (2 CPU cores shared with
  other jobs, load average 7-9; 2026-12-03): target encoding 14.6 ms vs 211 ms (14x); detections, sparse /
  medium / dense candidates: 118 / 140 / 135 ms vs 330 / 1212 / 1789 ms (2.8x / 8.6x / 13x);
* against torchvision, ``python -m benchmarks.run`` (benchmarks/RESULTS.md, 2 threads, the code these
  functions were moved from): target encoding 3.93x, detections 2.12x / 7.08x / 18.6x.
"""

from __future__ import annotations

from .matching import encode_targets, match_anchors
from .postprocess import decode_detections

__all__ = ["encode_targets", "match_anchors", "decode_detections"]
