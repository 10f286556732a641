"""Benchmarks: every line's "same result" check passes at --quick sizes, and the checks do catch differences.

No timing is asserted anywhere: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the repository, not part of the installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import run as bench_run  # noqa: E402
from benchmarks.bench_encode_targets import torchvision_targets  # noqa: E402
from benchmarks.bench_flops import count_flops, matmul_flops_per_s  # noqa: E402
from benchmarks.bench_inference import calibrate_background  # noqa: E402
from benchmarks.bench_map import pycocotools_map, synthetic_detections  # noqa: E402
from benchmarks.bench_train_step import _same_losses, grid_targets, torchvision_twin  # noqa: E402
from benchmarks.common import (  # noqa: E402
    END,
    START,
    BenchOptions,
    Comparison,
    Mismatch,
    compare,
    measure_peak,
    same_detections,
    write_section,
)
from ssd_tutorial.anchors import default_boxes  # noqa: E402
from ssd_tutorial.boxes import cxcywh_to_xyxy  # noqa: E402
from ssd_tutorial.config import TINY_SHAPES  # noqa: E402
from ssd_tutorial.evaluate import mean_average_precision  # noqa: E402
from ssd_tutorial.matching import encode_targets  # noqa: E402
from ssd_tutorial.model import SSD  # noqa: E402


@pytest.mark.slow
def test_quick_run_every_line_agrees_with_torchvision(tmp_path, capsys):
    results_file = tmp_path / "RESULTS.md"
    out = bench_run.main(["--quick", "--no-write", "--results", str(results_file)])
    results = out["results"]
    failed = [f"{r.what}: {r.same}" for r in results if not r.ok]
    assert not failed, failed
    names = [r.what for r in results]
    for prefix, count in (("target encoding", 1), ("detections", 3), ("train step", 1), ("inference", 1),
                          ("VOC07 mAP", 1), ("COCO mAP", 1)):  # fmt: skip
        assert sum(name.startswith(prefix) for name in names) == count, names
    for r in results:
        assert r.same.startswith("same"), r.same
        assert all(math.isfinite(t) and t > 0 for t in (r.ours_s, r.theirs_s, r.ours_cpu_s, r.theirs_cpu_s)), r
    assert out["matmul_flops"] > 0 and out["fit"]["images_per_s"] > 0
    assert next(r for r in results if r.what.startswith("train step")).flops > 0
    printed = capsys.readouterr().out
    assert "| line | ours | torchvision |" in printed and "### FLOP/s" in printed
    assert not results_file.exists()  # --no-write


def test_write_section_replaces_only_its_block(tmp_path):
    path = tmp_path / "RESULTS.md"
    write_section(path, "table 1")
    assert path.read_text() == f"# Benchmarks\n\n{START}\ntable 1\n{END}\n"
    path.write_text("# Benchmarks\n\n## Training TINY_SHAPES on CPU\nkeep me\n")
    write_section(path, "table 1")
    write_section(path, "table 2")
    text = path.read_text()
    assert text.count("keep me") == 1 and "table 1" not in text and "table 2" in text
    assert text.count(START) == text.count(END) == 1
    assert text.index("keep me") < text.index(START)


def _detections() -> list[dict]:
    return [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 20.0], [1.0, 2.0, 3.0, 4.0]]),
             "scores": torch.tensor([0.9, 0.5, 0.5]), "labels": torch.tensor([1, 2, 3])}]  # fmt: skip


def test_same_detections_accepts_tie_order_and_catches_differences():
    ours = _detections()
    assert same_detections(ours, _detections()) == "same 3 detections in 1 images"
    swapped = [{k: v[[0, 2, 1]] for k, v in ours[0].items()}]  # exactly tied scores in the other order
    assert same_detections(ours, swapped).startswith("same")
    for key, change in (("boxes", lambda b: b + torch.tensor([0.0, 0.0, 0.1, 0.0])),
                        ("labels", lambda x: x.flip(0)), ("scores", lambda s: s * 1.01)):  # fmt: skip
        other = [{**ours[0], key: change(ours[0][key])}]
        with pytest.raises(Mismatch):
            same_detections(ours, other)
    with pytest.raises(Mismatch):
        same_detections(ours, [{k: v[:2] for k, v in ours[0].items()}])


def _counting(value: int, calls: list[str], name: str):
    def function() -> int:
        calls.append(name)
        return value

    return function


def test_compare_does_not_time_when_results_differ():
    calls: list[str] = []

    def same(a: int, b: int) -> str:
        if a != b:
            raise Mismatch(f"{a} vs {b}")
        return "same"

    c = Comparison("line", "mine", "theirs", _counting(1, calls, "a"), _counting(2, calls, "b"), same)
    r = compare(c, BenchOptions(quick=True))
    assert not r.ok and r.same == "DIFFERENT: 1 vs 2" and math.isnan(r.ours_s)
    assert calls == ["a", "b"]
    calls.clear()
    c = Comparison("line", "mine", "theirs", _counting(1, calls, "a"), _counting(1, calls, "b"), same)
    r = compare(c, BenchOptions(quick=True))
    assert r.ok and r.repeats == 1 and calls == ["a", "b", "a", "b"]  # check, then alternating repeats
    assert r.ours_s >= 0 and r.theirs_s >= 0


def test_twin_gives_our_losses_and_detections_and_the_check_catches_a_difference():
    torch.manual_seed(0)
    model = SSD(TINY_SHAPES).train()
    twin = torchvision_twin(model)
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    targets = grid_targets(TINY_SHAPES, 2, seed=0, device="cpu")
    assert _same_losses(model(images, targets), twin(list(images), targets)).startswith("same losses")
    with torch.no_grad():
        for conv in twin.head.classification_head.module_list:
            conv.bias[1 :: TINY_SHAPES.num_classes] += 0.5  # class 1 of every anchor (channel = anchor * C + class)
    with pytest.raises(Mismatch, match="loss_cls"):
        _same_losses(model(images, targets), twin(list(images), targets))

    model.eval()
    calibrate_background(model, images)
    twin = torchvision_twin(model).eval()
    with torch.no_grad():
        ours, theirs = model(images), twin(list(images))
    assert sum(len(d["scores"]) for d in ours) > 10  # a real comparison, not two empty lists
    assert same_detections(ours, theirs).startswith("same")


def test_grid_targets_make_both_matching_rules_agree():
    targets = grid_targets(TINY_SHAPES, 8, seed=3, device="cpu")
    anchors = default_boxes(TINY_SHAPES)
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    for t in targets:
        boxes = t["boxes"]
        assert 1 <= len(boxes) <= 5 and ((t["labels"] >= 1) & (t["labels"] < TINY_SHAPES.num_classes)).all()
        low = torch.max(boxes[:, None, :2], boxes[None, :, :2])  # [M, M, 2]
        high = torch.min(boxes[:, None, 2:], boxes[None, :, 2:])  # [M, M, 2]
        overlap = (high - low).clamp(min=0).prod(dim=-1)  # [M, M] intersection areas
        assert (overlap.fill_diagonal_(0) == 0).all()  # disjoint boxes
    loc, cls = encode_targets(targets, anchors, TINY_SHAPES)
    tv_loc, tv_cls = torchvision_targets(targets, anchors_xyxy)
    assert torch.equal(cls, tv_cls)
    torch.testing.assert_close(loc, tv_loc, rtol=1e-5, atol=1e-5)


def test_pycocotools_with_voc07_settings_gives_the_hand_worked_ap():
    # One class, 2 gt boxes; detections by score: TP, FP (duplicate), TP -> precision 1, 1/2, 2/3 at recall
    # 1/2, 1/2, 1: 11-point AP = (6 * 1 + 5 * 2/3) / 11.
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
                "labels": torch.tensor([1, 1])}]  # fmt: skip
    detections = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [20.0, 20.0, 30.0, 31.0]]),
                   "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([1, 1, 1])}]  # fmt: skip
    expected = (6 + 5 * 2 / 3) / 11
    assert pycocotools_map(detections, targets, voc07=True)["map"] == pytest.approx(expected, abs=1e-12)
    assert mean_average_precision(detections, targets, method="voc07")["map"] == pytest.approx(expected, abs=1e-12)


def test_pycocotools_voc07_matches_ours_per_class_on_synthetic_data():
    detections, targets = synthetic_detections(30, seed=1)
    ours = mean_average_precision(detections, targets, method="voc07")["ap_per_class"]
    theirs = pycocotools_map(detections, targets, voc07=True)["ap_per_class"]
    assert sorted(ours) == sorted(theirs) and len(ours) > 5
    for label, ap in ours.items():
        assert theirs[label] == pytest.approx(ap, abs=1e-9), label


def test_count_flops_hand_worked():
    linear = nn.Linear(3, 4, bias=False)
    x = torch.rand(5, 3)
    assert count_flops(lambda: linear(x)) == 2 * 5 * 3 * 4
    assert count_flops(lambda: linear(x).sum().backward()) == 2 * (2 * 5 * 3 * 4)  # + the weight gradient
    conv = nn.Conv2d(1, 1, 3, bias=False)
    assert count_flops(lambda: conv(torch.rand(1, 1, 5, 5))) == 2 * 9 * 9  # 3x3 outputs, 9 multiply-adds each


def test_matmul_rate_is_positive():
    rate = matmul_flops_per_s("cpu", torch.float32, n=64, repeats=1)
    assert math.isfinite(rate) and rate > 0


def test_measure_peak_sees_a_64_mb_tensor():
    result, mb = measure_peak(lambda: torch.ones(16 * 2**20).sum(), "cpu")  # 64 MB, freed before returning
    assert result.item() == 16 * 2**20
    if math.isnan(mb):
        pytest.skip("no /proc peak-RSS reset on this system")
    assert mb >= 48


def test_cli_refuses_fp16_on_cpu_and_missing_cuda():
    with pytest.raises(SystemExit):
        bench_run.main(["--quick", "--no-write", "--amp", "fp16"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench_run.main(["--quick", "--no-write", "--device", "cuda"])
