"""Tests for cli.py and __main__.py: every sub-command end to end on tiny data, help, one-line errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from ssd_tutorial.anchors import format_anchor_table
from ssd_tutorial.cli import build_parser, main, parse_data_spec
from ssd_tutorial.config import TINY_SHAPES, get_config
from ssd_tutorial.data import ShapesDataset


def test_parse_data_spec():
    assert parse_data_spec("shapes") == ("shapes", ())
    assert parse_data_spec("voc:/data/voc") == ("voc", ("/data/voc",))
    assert parse_data_spec("coco:/imgs,/ann.json") == ("coco", ("/imgs", "/ann.json"))
    for bad in ("foo", "voc", "voc:", "coco:/imgs", "coco:/a,", "shapes:x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_data_spec(bad)


def test_anchors_prints_the_table(capsys):
    assert main(["anchors", "--preset", "ssd300_voc"]) == 0
    assert capsys.readouterr().out.strip() == format_anchor_table(get_config("ssd300_voc"))


@pytest.mark.parametrize("command", ["train", "evaluate", "detect", "anchors"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help text"
        for flag in action.option_strings:
            assert flag in out


@pytest.mark.parametrize("argv", [
    ["train", "--data", "foo"],
    ["train", "--epochs", "0"],
    ["train", "--preset", "nope"],
    ["detect", "--score-threshold", "2", "x.png"],
    ["frobnicate"],
])  # fmt: skip
def test_bad_arguments_exit_2_with_a_one_line_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("ssd-tutorial")


def test_runtime_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.pt" in err and "Traceback" not in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert main(["detect", "--checkpoint", str(bad), str(bad), "--device", "cpu"]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert main(["train", "--data", f"voc:{tmp_path}", "--epochs", "1", "--out", str(tmp_path / "o")]) == 2
    assert "VOC" in capsys.readouterr().err
    from ssd_tutorial.checkpoints import save_checkpoint
    from ssd_tutorial.model import build_ssd

    ckpt = save_checkpoint(tmp_path / "m.pt", build_ssd(TINY_SHAPES))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    assert main(["detect", "--checkpoint", str(ckpt), str(junk), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "junk.png" in err


def test_train_evaluate_detect_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny_shapes", "--epochs", "1", "--num-train", "8", "--num-val", "4",
                 "--batch-size", "4", "--max-iters", "1", "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "epoch" in printed and "done:" in printed
    assert {"last.pt", "best.pt", "history.json"} <= {p.name for p in out.iterdir()}

    assert main(["evaluate", "--checkpoint", str(out / "last.pt"), "--num-images", "4", "--device", "cpu"]) == 0
    report = capsys.readouterr().out
    for text in ("VOC07 11-pt", "all-point", "COCO mAP@[.5:.95]", "circle", "square", "triangle"):
        assert text in report

    image, _ = ShapesDataset(1, image_size=96, seed=3)[0]  # another size: detect resizes and maps boxes back
    png = tmp_path / "img.png"
    PIL.Image.fromarray((image * 255).to(torch.uint8).permute(1, 2, 0).numpy()).save(png)
    det_dir = tmp_path / "det"
    assert main(["detect", "--checkpoint", str(out / "last.pt"), str(png), "--out", str(det_dir),
                 "--score-threshold", "0.0", "--device", "cpu"]) == 0  # fmt: skip
    drawn = np.asarray(PIL.Image.open(det_dir / "img.png"))
    assert drawn.shape == (576, 576, 3)  # drawn 6x larger (a whole factor up to >= 512 px) so labels are legible
    report = json.loads((det_dir / "detections.json").read_text())
    assert report[0]["image"] == str(png) and (report[0]["width"], report[0]["height"]) == (96, 96)
    for d in report[0]["detections"]:
        assert set(d) == {"label", "class_name", "score", "box_xyxy"}
        assert d["class_name"] == TINY_SHAPES.class_names[d["label"]]
        x1, y1, x2, y2 = d["box_xyxy"]
        assert 0 <= x1 <= x2 <= 96 and 0 <= y1 <= y2 <= 96


def test_train_resume_continues(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--num-train", "8", "--batch-size", "4", "--max-iters", "1", "--out", str(out),
              "--no-progress", "--device", "cpu", "--val-data", "shapes", "--num-val", "4"]  # fmt: skip
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "2", "--resume", str(out / "last.pt")]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    capsys.readouterr()


def test_python_dash_m_and_console_script():
    run = subprocess.run([sys.executable, "-m", "ssd_tutorial", "anchors", "--preset", "tiny_shapes"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == format_anchor_table(TINY_SHAPES)
    script = Path(sys.executable).parent / "ssd-tutorial"
    if script.exists():
        bad = subprocess.run([str(script), "train", "--data", "nope"], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_train_pretrained_backbone_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty cache
    argv = ["train", "--preset", "ssd300_voc", "--data", "shapes", "--epochs", "1", "--num-train", "4",
            "--max-iters", "1", "--out", str(tmp_path / "o"), "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main([*argv, "--pretrained-backbone"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing is downloaded" in err and str(tmp_path / "hub") in err
    assert main(["train", "--preset", "tiny_shapes", "--pretrained-backbone", "--epochs", "1",
                 "--out", str(tmp_path / "t")]) == 2  # fmt: skip
    assert "'tiny' has no pretrained weights" in capsys.readouterr().err
