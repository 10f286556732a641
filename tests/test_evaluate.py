"""Tests for ssd_tutorial.evaluate: hand-worked VOC AP, devkit matching rules, a reference loop, pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssd_tutorial.evaluate import (
    VOC07_RECALL_THRESHOLDS,
    average_precision,
    coco_map,
    mean_average_precision,
    precision_recall_curve,
)

T = torch.tensor


def det(boxes, scores, labels):
    return {"boxes": T(boxes, dtype=torch.float32).reshape(-1, 4), "scores": T(scores, dtype=torch.float32),
            "labels": T(labels, dtype=torch.int64)}  # fmt: skip


def gt(boxes, labels, difficult=None):
    target = {"boxes": T(boxes, dtype=torch.float32).reshape(-1, 4), "labels": T(labels, dtype=torch.int64)}
    if difficult is not None:
        target["difficult"] = T(difficult, dtype=torch.bool)
    return target


A, B, C, D = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 0, 70, 10]
FAR = [100, 100, 110, 110]


def hand_case():
    """npos = 4 (A, B in image 0; C, D in image 1). By score: TP(A), FP (A again), TP(C), TP(B); D never found.

    precision = 1, 1/2, 2/3, 3/4 ; recall = 1/4, 1/4, 2/4, 3/4.
    """
    targets = [gt([A, B], [1, 1]), gt([C, D], [1, 1])]
    detections = [det([A, A, B], [0.9, 0.8, 0.6], [1, 1, 1]), det([C], [0.7], [1])]
    return detections, targets


def test_hand_worked_voc07():
    # t = 0, .1, .2: best precision at recall >= t is 1; t = .3 ... .7: 3/4; t = .8, .9, 1: nothing -> 0.
    expected = (3 * 1.0 + 5 * 0.75) / 11
    result = mean_average_precision(*hand_case(), method="voc07")
    assert result["map"] == pytest.approx(expected, abs=1e-12)
    assert result["ap_per_class"] == {1: pytest.approx(expected, abs=1e-12)}


def test_hand_worked_all_points():
    # Envelope 1 on recall [0, 1/4], 3/4 on (1/4, 3/4], 0 after: 1/4 * 1 + 2/4 * 3/4.
    expected = 0.25 * 1.0 + 0.5 * 0.75
    result = mean_average_precision(*hand_case(), method="all_points")
    assert result["map"] == pytest.approx(expected, abs=1e-12)


def test_precision_recall_curve_by_hand():
    curve = precision_recall_curve(*hand_case())[1]
    assert torch.allclose(curve["precision"], T([1, 1 / 2, 2 / 3, 3 / 4], dtype=torch.float64))
    assert torch.allclose(curve["recall"], T([1 / 4, 1 / 4, 2 / 4, 3 / 4], dtype=torch.float64))
    assert torch.allclose(curve["scores"], T([0.9, 0.8, 0.7, 0.6], dtype=torch.float64))


def devkit_thresholds() -> list[float]:
    """MATLAB's 0:0.1:1 as its colon operator computes it: a + k*d for the first half, b - (n-k)*d for the rest."""
    return [0.0 + k * 0.1 for k in range(6)] + [1.0 - (10 - k) * 0.1 for k in range(6, 11)]


def test_voc07_thresholds_are_the_devkit_colon_operator():
    assert list(VOC07_RECALL_THRESHOLDS) == devkit_thresholds()
    assert VOC07_RECALL_THRESHOLDS[3] == 0.30000000000000004 and VOC07_RECALL_THRESHOLDS[3] > 3 / 10
    exact = [round(k / 10, 1) for k in range(11)]
    assert [t == e for t, e in zip(VOC07_RECALL_THRESHOLDS, exact)] == [True] * 3 + [False] + [True] * 7
    # py-faster-rcnn's np.arange(0, 1.1, 0.1) is another choice: it differs from the devkit at 0.6 and 0.7.
    arange = np.arange(0, 1.1, 0.1).tolist()
    assert [k for k in range(11) if arange[k] != VOC07_RECALL_THRESHOLDS[k]] == [6, 7]


def _found_first(found: int):
    """10 gt boxes; the `found` best detections hit `found` of them, then 3 misses: recall reaches found/10."""
    boxes = [[20 * k, 0, 20 * k + 10, 10] for k in range(10)]
    scores = [0.9 - 0.05 * k for k in range(found + 3)]
    return [det(boxes[:found] + [FAR] * 3, scores, [1] * (found + 3))], [gt(boxes, [1] * 10)]


def test_voc07_recall_exactly_on_a_threshold_follows_the_devkit():
    # Recall 3/10 (the double nearest 0.3) < 0.30000000000000004: precision 1 counts for t = 0, .1, .2 only,
    # 3 of 11 points (with thresholds k / 10 it would be 4 / 11).
    detections, targets = _found_first(3)
    assert mean_average_precision(detections, targets)["map"] == pytest.approx(3 / 11, abs=1e-15)
    assert mean_average_precision(detections, targets, method="all_points")["map"] == pytest.approx(0.3)
    # Recall 6/10 == the devkit's 1 - 4*0.1: t = 0 … 0.6 count, 7 of 11 (np.arange's 0.6000000000000001: 6 / 11).
    detections, targets = _found_first(6)
    assert mean_average_precision(detections, targets)["map"] == pytest.approx(7 / 11, abs=1e-15)
    assert average_precision([1.0, 1.0], [0.5, 0.7]) == pytest.approx(8 / 11, abs=1e-15)  # 0.7 == 1 - 3*0.1


def test_average_precision_direct():
    assert average_precision([], [], "voc07") == 0.0
    assert average_precision([], [], "all_points") == 0.0
    assert average_precision([1.0], [1.0], "voc07") == pytest.approx(1.0)
    # All-points uses the envelope: a dip is filled by the later, higher precision.
    assert average_precision([1.0, 0.5, 2 / 3], [0.5, 0.5, 1.0], "all_points") == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_highest_iou_box_taken_means_false_positive():
    # The second detection overlaps both boxes; its best box (the first) is already taken -> FP, even though
    # its IoU with the free second box (7*10 / 130 = 0.54) is above the threshold.
    targets = [gt([[0, 0, 10, 10], [5, 0, 15, 10]], [1, 1])]
    detections = [det([[0, 0, 10, 10], [2, 0, 12, 10]], [0.9, 0.8], [1, 1])]
    curve = precision_recall_curve(detections, targets)[1]
    assert curve["precision"].tolist() == [1.0, 0.5] and curve["recall"].tolist() == [0.5, 0.5]
    assert mean_average_precision(detections, targets)["map"] == pytest.approx(6 / 11)


def test_continuous_coordinates_without_plus_one():
    # IoU = 49 / 100 < 0.5 in continuous coordinates (with the old +1 convention it would be 0.53 -> TP).
    targets = [gt([[0, 0, 10, 10]], [1])]
    detections = [det([[0, 0, 10, 4.9]], [0.9], [1])]
    assert mean_average_precision(detections, targets)["map"] == 0.0
    detections = [det([[0, 0, 10, 5]], [0.9], [1])]  # IoU exactly 0.5 -> TP (>=)
    assert mean_average_precision(detections, targets)["map"] == 1.0


def test_difficult_boxes_are_ignored():
    targets = [gt([A, B], [1, 1], difficult=[False, True])]
    # The detection on the difficult box B (highest score) is neither TP nor FP; A is found: AP 1.
    detections = [det([B, A], [0.9, 0.8], [1, 1])]
    assert mean_average_precision(detections, targets)["map"] == 1.0
    curve = precision_recall_curve(detections, targets)[1]
    assert curve["scores"].tolist() == pytest.approx([0.8])
    # Without the flag, a detection on B alone is a TP with recall 1/2; with it, nothing is found.
    assert mean_average_precision([det([B], [0.9], [1])], [gt([A, B], [1, 1])])["map"] == pytest.approx(6 / 11)
    assert mean_average_precision([det([B], [0.9], [1])], targets)["map"] == 0.0


def test_classes_without_gt_are_left_out():
    targets = [gt([A, B], [1, 2], difficult=[False, True])]  # class 2 has only a difficult box
    detections = [det([A, B, C], [0.9, 0.8, 0.7], [1, 2, 3])]  # class 3 has no gt at all
    result = mean_average_precision(detections, targets)
    assert result["ap_per_class"] == {1: 1.0}
    assert result["map"] == 1.0


def test_class_without_detections_scores_zero():
    targets = [gt([A], [1]), gt([B], [2])]
    detections = [det([A], [0.9], [1]), det([], [], [])]
    result = mean_average_precision(detections, targets)
    assert result["ap_per_class"] == {1: 1.0, 2: 0.0} and result["map"] == 0.5


def test_images_without_detections_or_targets():
    targets = [gt([A], [1]), gt([], []), gt([C], [1])]
    detections = [det([A], [0.9], [1]), det([FAR], [0.95], [1]), det([], [], [])]
    # By score: FP (image 1 has no gt), TP -> precision 0, 1/2 ; recall 0, 1/2.
    result = mean_average_precision(detections, targets, method="all_points")
    assert result["map"] == pytest.approx(0.25)


def test_empty_everything():
    assert mean_average_precision([], []) == {"map": 0.0, "ap_per_class": {}}
    assert mean_average_precision([det([], [], [])], [gt([], [])]) == {"map": 0.0, "ap_per_class": {}}
    assert coco_map([], []) == {"map": 0.0, "map_50": 0.0, "map_75": 0.0}


def test_perfect_detector_scores_one():
    g = torch.Generator().manual_seed(0)
    targets, detections = [], []
    for _ in range(20):
        m = int(torch.randint(0, 5, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 200
        boxes = torch.cat([xy, xy + 10 + torch.rand(m, 2, generator=g) * 90], dim=1)
        labels = torch.randint(1, 5, (m,), generator=g)
        targets.append({"boxes": boxes, "labels": labels})
        detections.append({"boxes": boxes.clone(), "labels": labels.clone(), "scores": torch.rand(m, generator=g)})
    for method in ("voc07", "all_points"):
        result = mean_average_precision(detections, targets, method=method)
        assert result["map"] == pytest.approx(1.0)
        assert all(v == pytest.approx(1.0) for v in result["ap_per_class"].values())
    assert coco_map(detections, targets) == pytest.approx({"map": 1.0, "map_50": 1.0, "map_75": 1.0})


def test_invalid_inputs():
    detections, targets = hand_case()
    with pytest.raises(ValueError, match="method"):
        mean_average_precision(detections, targets, method="coco")
    with pytest.raises(ValueError, match="method"):
        average_precision([1.0], [1.0], method="11point")
    with pytest.raises(ValueError, match="one entry per image"):
        mean_average_precision(detections, targets[:1])
    with pytest.raises(ValueError, match="iou_threshold"):
        mean_average_precision(detections, targets, iou_threshold=0.0)
    with pytest.raises(ValueError, match=r"detections\[0\]\['boxes'\] must be \[N, 4\]"):
        mean_average_precision([{"boxes": torch.zeros(2, 3), "scores": torch.zeros(2), "labels": torch.ones(2)}],
                               [gt([A], [1])])  # fmt: skip
    with pytest.raises(ValueError, match="missing"):
        mean_average_precision([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}], [gt([A], [1])])
    with pytest.raises(ValueError, match="one entry per box"):
        mean_average_precision([det([A], [0.5], [1])], [{"boxes": T([A]), "labels": T([1, 1])}])
    with pytest.raises(TypeError):
        mean_average_precision(detections[0], targets[0])


def test_bad_values_name_the_image_and_key():
    detections, targets = hand_case()

    def with_value(items, b, key, index, value):
        items = [dict(item) for item in items]
        items[b][key] = items[b][key].clone()
        items[b][key][index] = value
        return items

    nan_score = with_value(detections, 1, "scores", 0, float("nan"))
    for call in (mean_average_precision, coco_map):  # NaN scores gave map 0.5 and 1.0 before
        with pytest.raises(ValueError, match=r"detections\[1\]\['scores'\]\[0\] must be finite, got nan"):
            call(nan_score, targets)
    nan, inf = float("nan"), float("inf")
    cases = [
        (with_value(detections, 0, "boxes", (2, 1), nan), targets, r"detections\[0\]\['boxes'\]\[2\] must be finite"),
        (with_value(detections, 0, "boxes", (1, 2), -5.0), targets, r"detections\[0\]\['boxes'\]\[1\] .*x2 >= x1"),
        (detections, with_value(targets, 1, "boxes", (0, 3), 0.0), r"targets\[1\]\['boxes'\]\[0\] .*y2 >= y1"),
        (detections, with_value(targets, 1, "boxes", (1, 0), inf), r"targets\[1\]\['boxes'\]\[1\] must be finite"),
        (detections, with_value(targets, 1, "labels", 1, 0), r"targets\[1\]\['labels'\]\[1\] must be an object class"),
        (detections, with_value(targets, 0, "labels", 0, -1), r"targets\[0\]\['labels'\]\[0\] .*got -1"),
        (with_value(detections, 0, "labels", 2, 0), targets, r"detections\[0\]\['labels'\]\[2\] .*got 0"),
    ]  # fmt: skip
    for dets, gts, message in cases:
        for call in (mean_average_precision, coco_map):
            with pytest.raises(ValueError, match=message):
                call(dets, gts)
    float_labels = [{**t, "labels": t["labels"].float()} for t in targets]
    with pytest.raises(TypeError, match=r"targets\[0\]\['labels'\] must be integer class ids \(long\), got dtype f"):
        mean_average_precision(detections, float_labels)
    with pytest.raises(TypeError, match=r"detections\[0\]\['scores'\] must be numbers, got dtype bool"):
        mean_average_precision([{**detections[0], "scores": T([True, True, False])}, detections[1]], targets)
    with pytest.raises(ValueError, match=r"targets\[0\]\['difficult'\]\[1\] must be True/False"):
        mean_average_precision(detections, [{**targets[0], "difficult": T([0, 2])}, targets[1]])
    with pytest.raises(TypeError, match=r"iou_threshold must be a number, got str '0\.5'"):
        mean_average_precision(detections, targets, iou_threshold="0.5")
    with pytest.raises(ValueError, match="iou_threshold"):
        mean_average_precision(detections, targets, iou_threshold=float("nan"))
    # The label-0 case of the review: it used to be averaged in as a class ({0: 0.0, 1: 1.0}).
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\]\[0\] must be an object class >= 1"):
        mean_average_precision([det([A], [0.9], [1])], [gt([B, A], [0, 1])])
    # Zero-area boxes are valid (IoU 0), and 0/1 ints are accepted as difficult flags.
    assert mean_average_precision([det([[5, 5, 5, 5]], [0.9], [1])], [gt([A], [1], [0])])["map"] == 0.0
    assert mean_average_precision([det([A], [0.9], [1])], [{**gt([A], [1]), "difficult": T([0])}])["map"] == 1.0


def test_average_precision_checks_its_curve():
    with pytest.raises(ValueError, match="same length"):
        average_precision([1.0, 0.5], [0.5])
    with pytest.raises(ValueError, match=r"precision must be finite values in \[0, 1\]"):
        average_precision([float("nan")], [0.5])
    with pytest.raises(ValueError, match=r"recall must be finite values in \[0, 1\]"):
        average_precision([1.0], [1.5])
    with pytest.raises(ValueError, match="non-decreasing"):
        average_precision([1.0, 1.0], [0.5, 0.2])
    assert average_precision([], []) == 0.0 and average_precision([], [], "all_points") == 0.0


def reference_voc(detections, targets, iou_threshold, method):
    """The VOC devkit's loops, written out plainly (per class, per detection), as an independent reference."""
    classes = sorted({int(l) for t in targets for l, d in zip(t["labels"], t.get("difficult", [False] * 99)) if not d})
    aps = {}
    for c in classes:
        gts = {}
        npos = 0
        for b, t in enumerate(targets):
            diff = t.get("difficult", torch.zeros(len(t["labels"]), dtype=torch.bool))
            sel = t["labels"] == c
            gts[b] = {"boxes": t["boxes"][sel].double().numpy(), "difficult": diff[sel].numpy(),
                      "taken": np.zeros(int(sel.sum()), dtype=bool)}  # fmt: skip
            npos += int((~diff[sel]).sum())
        entries = [(float(s), b, bx.double().numpy()) for b, d in enumerate(detections)
                   for bx, s, l in zip(d["boxes"], d["scores"], d["labels"]) if l == c]  # fmt: skip
        entries.sort(key=lambda e: -e[0])  # Python's sort is stable
        tp, fp = [], []
        for _, b, bx in entries:
            g = gts[b]
            best, jbest = -np.inf, -1
            for j, gb in enumerate(g["boxes"]):
                iw = max(min(bx[2], gb[2]) - max(bx[0], gb[0]), 0.0)
                ih = max(min(bx[3], gb[3]) - max(bx[1], gb[1]), 0.0)
                inter = iw * ih
                union = (bx[2] - bx[0]) * (bx[3] - bx[1]) + (gb[2] - gb[0]) * (gb[3] - gb[1]) - inter
                iou = inter / union
                if iou > best:
                    best, jbest = iou, j
            if best >= iou_threshold:
                if g["difficult"][jbest]:
                    continue
                if not g["taken"][jbest]:
                    g["taken"][jbest] = True
                    tp.append(1), fp.append(0)
                else:
                    tp.append(0), fp.append(1)
            else:
                tp.append(0), fp.append(1)
        tp_c, fp_c = np.cumsum(tp, dtype=float), np.cumsum(fp, dtype=float)
        rec = tp_c / npos
        prec = tp_c / np.maximum(tp_c + fp_c, 1e-300)
        if method == "voc07":
            ap = 0.0
            for t in devkit_thresholds():
                p = prec[rec >= t].max() if (rec >= t).any() else 0.0
                ap += p / 11
        else:
            mrec, mpre = np.r_[0.0, rec, 1.0], np.r_[0.0, prec, 0.0]
            for i in range(len(mpre) - 2, -1, -1):
                mpre[i] = max(mpre[i], mpre[i + 1])
            i = np.where(mrec[1:] != mrec[:-1])[0]
            ap = float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
        aps[c] = ap
    return aps


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["voc07", "all_points"])
def test_matches_reference_loop_on_random_data(seed, method):
    g = torch.Generator().manual_seed(seed)
    targets, detections = [], []
    for _ in range(25):
        m = int(torch.randint(0, 6, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 60
        boxes = torch.cat([xy, xy + 5 + torch.rand(m, 2, generator=g) * 30], dim=1)
        labels = torch.randint(1, 4, (m,), generator=g)
        targets.append({"boxes": boxes, "labels": labels, "difficult": torch.rand(m, generator=g) < 0.15})
        # Detections: jittered copies of the boxes (some duplicated) plus random ones, labels sometimes wrong.
        n = int(torch.randint(0, 8, (1,), generator=g))
        pick = torch.randint(0, max(m, 1), (n,), generator=g)
        base = boxes[pick] if m else torch.rand(n, 4, generator=g) * 60
        jitter = torch.randn(n, 4, generator=g) * 4
        d_boxes = torch.cat([(base + jitter)[:, :2], (base + jitter)[:, :2] + (base[:, 2:] - base[:, :2]).abs() + 1], 1)
        d_labels = torch.where(torch.rand(n, generator=g) < 0.8, labels[pick] if m else torch.ones(n).long(),
                               torch.randint(1, 4, (n,), generator=g))  # fmt: skip
        detections.append({"boxes": d_boxes, "labels": d_labels, "scores": torch.rand(n, generator=g)})
    ours = mean_average_precision(detections, targets, iou_threshold=0.5, method=method)
    ref = reference_voc(detections, targets, 0.5, method)
    assert ours["ap_per_class"].keys() == ref.keys()
    for c in ref:
        assert ours["ap_per_class"][c] == pytest.approx(ref[c], abs=1e-12), c
    assert ours["map"] == pytest.approx(np.mean(list(ref.values())), abs=1e-12)


def test_coco_map_50_against_all_points_and_101_point_interpolation():
    # Detections hit their box at IoU 1 or miss completely, so AP is the same at every COCO threshold.
    detections, targets = hand_case()
    curve = precision_recall_curve(detections, targets)[1]
    precision, recall = curve["precision"].numpy(), curve["recall"].numpy()
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    ap_101 = np.where(first < len(recall), envelope[np.minimum(first, len(recall) - 1)], 0.0).mean()
    result = coco_map(detections, targets)
    assert result["map_50"] == pytest.approx(ap_101, abs=1e-9)  # 101-point interpolation, computed by hand
    assert result["map_50"] == pytest.approx(mean_average_precision(detections, targets, method="all_points")["map"],
                                             abs=0.01)  # close to, not equal to, the all-points area  # fmt: skip
    assert result["map"] == pytest.approx(result["map_50"]) and result["map_75"] == pytest.approx(result["map_50"])


def test_coco_map_thresholds_and_difficult():
    # IoU 0.58: counts at 0.5 and 0.55, not from 0.6 on -> map = 2/10 of the IoU thresholds.
    targets = [gt([[0, 0, 10, 10]], [1])]
    detections = [det([[0, 0, 10, 5.8]], [0.9], [1])]
    result = coco_map(detections, targets)
    assert result["map_50"] == pytest.approx(1.0) and result["map_75"] == 0.0
    assert result["map"] == pytest.approx(0.2)
    # A detection on a difficult (crowd) box is ignored, not a false positive.
    targets = [gt([A, B], [1, 1], difficult=[False, True])]
    assert coco_map([det([B, A], [0.9, 0.8], [1, 1])], targets)["map"] == pytest.approx(1.0)


def test_coco_map_prints_nothing(capsys):
    coco_map(*hand_case())
    assert capsys.readouterr().out == ""


def test_large_input_runs():
    # 2,000 images x 100 detections: must finish (vectorized); no timing assertion.
    g = torch.Generator().manual_seed(0)
    targets, detections = [], []
    for _ in range(2000):
        xy = torch.rand(3, 2, generator=g) * 400
        targets.append({"boxes": torch.cat([xy, xy + 50], 1), "labels": torch.randint(1, 21, (3,), generator=g)})
        xy = torch.rand(100, 2, generator=g) * 400
        detections.append({"boxes": torch.cat([xy, xy + 50], 1), "labels": torch.randint(1, 21, (100,), generator=g),
                           "scores": torch.rand(100, generator=g)})  # fmt: skip
    result = mean_average_precision(detections, targets)
    assert 0.0 <= result["map"] < 0.5 and len(result["ap_per_class"]) == 20
