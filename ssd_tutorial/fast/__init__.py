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

Measured (2 CPU cores shared with other jobs, torch threads 2, SSD300 anchors, B = 32):
FIGURES
"""

from __future__ import annotations

from .matching import encode_targets, match_anchors
from .postprocess import decode_detections

__all__ = ["encode_targets", "match_anchors", "decode_detections"]
