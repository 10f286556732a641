"""Tests for cli.py and __main__.py: every sub-command end to end on tiny data, help, one-line errors."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import warnings
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
    ["train", "--grad-clip", "-1"],
    ["train", "--grad-clip", "0"],
    ["train", "--warmup-iters", "-5"],
    ["train", "--lr", "0"],
    ["train", "--lr", "nan"],
    ["train", "--workers", "-1"],
])  # fmt: skip
def test_bad_arguments_exit_2_with_a_one_line_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ssd-tutorial") and "error: " in err


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
    import urllib.error

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # and no network
    argv = ["train", "--preset", "ssd300_voc", "--data", "shapes", "--epochs", "1", "--num-train", "4",
            "--max-iters", "1", "--out", str(tmp_path / "o"), "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main([*argv, "--pretrained-backbone"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "hub") in err
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in err and "Name or service not known" in err
    assert main(["train", "--preset", "tiny_shapes", "--pretrained-backbone", "--epochs", "1",
                 "--out", str(tmp_path / "t")]) == 2  # fmt: skip
    assert "'tiny' has no pretrained weights" in capsys.readouterr().err


TINY_RUN = ["train", "--num-train", "8", "--num-val", "4", "--batch-size", "4", "--max-iters", "1", "--no-progress",
            "--device", "cpu"]  # fmt: skip


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: " in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize("command", [["train", "--epochs", "1"], ["evaluate"], ["detect", "x.png"]])
def test_unusable_device_is_one_line_naming_what_is_available(command, tmp_path, capsys):
    png = tmp_path / "x.png"
    PIL.Image.new("RGB", (8, 8)).save(png)
    argv = [command[0], *(str(png) if a == "x.png" else a for a in command[1:])]
    assert main([*argv, "--device", "nope"] + (["--out", str(tmp_path / "o")] if command[0] != "evaluate" else [])) == 2
    _one_line_error(capsys, "device 'nope' is not a device name", "available here: cpu")
    if not torch.cuda.is_available():
        assert main([*argv, "--device", "cuda", "--out", str(tmp_path / "o")] if command[0] != "evaluate"
                    else [*argv, "--device", "cuda"]) == 2  # fmt: skip
        _one_line_error(capsys, "device 'cuda' is not available", "no CUDA GPU")


def test_checkpoint_whose_config_disagrees_with_its_weights(tmp_path, capsys):
    from ssd_tutorial.checkpoints import write_atomic
    from ssd_tutorial.model import build_ssd

    other = TINY_SHAPES.replace(num_classes=5, class_names=(*TINY_SHAPES.class_names, "star"))
    bad = write_atomic(tmp_path / "mixed.pt", {"model": build_ssd(other).state_dict(), "config": TINY_SHAPES.to_dict(),
                                               "epoch": 0})  # fmt: skip
    assert main(["evaluate", "--checkpoint", str(bad), "--num-images", "2", "--device", "cpu"]) == 2
    _one_line_error(capsys, "mixed.pt", "do not fit", "cls_heads.0.weight")
    assert main([*TINY_RUN, "--epochs", "1", "--out", str(tmp_path / "r"), "--resume", str(bad)]) == 2
    _one_line_error(capsys, "mixed.pt", "cls_heads.0.weight")
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--device", "cpu"]) == 2
    _one_line_error(capsys, "is a directory")


def test_debug_flag_shows_the_traceback(tmp_path):
    for argv in (["--debug", "evaluate"], ["evaluate", "--debug"]):
        with pytest.raises(FileNotFoundError, match="missing.pt"):
            main([*argv, "--checkpoint", str(tmp_path / "missing.pt"), "--device", "cpu"])


def test_train_refuses_to_replace_a_run_unasked(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY_RUN, "--epochs", "1", "--out", str(out)]) == 0
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()
    assert main([*TINY_RUN, "--epochs", "1", "--out", str(out)]) == 2
    _one_line_error(capsys, "already holds a training run", "--resume", "--overwrite")
    assert (out / "last.pt").read_bytes() == before
    assert main([*TINY_RUN, "--epochs", "1", "--out", str(out), "--resume", str(out / "last.pt")]) == 2
    _one_line_error(capsys, "has done 1 epoch(s) already and --epochs is 1")
    assert main([*TINY_RUN, "--epochs", "1", "--out", str(out), "--overwrite", "--seed", "3"]) == 0
    assert (out / "last.pt").read_bytes() != before
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "history.json", "last.pt"]  # no lock, no temp left


def test_output_folder_is_checked_before_any_data_is_loaded(tmp_path, capsys, monkeypatch):
    import os
    import socket

    import ssd_tutorial.cli as cli

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the output folder was checked")

    monkeypatch.setattr(cli, "_dataset", no_data)
    (tmp_path / "file").write_text("x")
    assert main([*TINY_RUN, "--epochs", "1", "--out", str(tmp_path / "file")]) == 2
    _one_line_error(capsys, "is a file, not a folder")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "train.lock").write_text(f"{os.getppid()} {socket.gethostname()}\n")  # a live process holds it
    assert main([*TINY_RUN, "--epochs", "1", "--out", str(busy)]) == 2
    _one_line_error(capsys, "in use by another training", f"process {os.getppid()}")


class _TermAt(torch.utils.data.Dataset):
    def __init__(self, dataset, at: int) -> None:
        self.dataset, self.at, self.calls = dataset, at, 0
        self.class_names = dataset.class_names

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        self.calls += 1
        if self.calls == self.at:
            import signal

            signal.raise_signal(signal.SIGTERM)
        return self.dataset[i]


def test_sigterm_in_the_first_epoch_exits_143_with_a_resumable_checkpoint(tmp_path, capsys, monkeypatch):
    import ssd_tutorial.cli as cli

    real = cli._dataset
    monkeypatch.setattr(cli, "_dataset", lambda *a, train, **k: _TermAt(real(*a, train=train, **k), 6) if train
                        else real(*a, train=train, **k))  # fmt: skip
    out = tmp_path / "run"
    argv = ["train", "--num-train", "16", "--num-val", "4", "--batch-size", "4", "--max-iters", "3", "--no-progress",
            "--device", "cpu", "--epochs", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 143
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted by SIGTERM in epoch 1 after iteration 1 of 3; resume from" in err
    monkeypatch.setattr(cli, "_dataset", real)
    assert main([*argv, "--resume", str(out / "last.pt")]) == 0
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]


def test_detect_checks_images_first_and_writes_only_this_runs_list(tmp_path, capsys):
    from ssd_tutorial.checkpoints import save_checkpoint
    from ssd_tutorial.model import build_ssd

    torch.manual_seed(0)
    ckpt = str(save_checkpoint(tmp_path / "m.pt", build_ssd(TINY_SHAPES)))
    out = tmp_path / "det"
    assert main(["detect", "--checkpoint", ckpt, str(tmp_path / "missing.png"), "--out", str(out)]) == 2
    _one_line_error(capsys, "missing.png")
    assert not out.exists()  # no empty output folder

    ok, other, junk = tmp_path / "ok.png", tmp_path / "other.png", tmp_path / "bad.png"
    for path in (ok, other):
        PIL.Image.new("RGB", (40, 30), (90, 90, 90)).save(path)
    junk.write_bytes(b"not a png")
    assert main(["detect", "--checkpoint", ckpt, str(ok), str(other), "--out", str(out), "--device", "cpu"]) == 0
    assert "model knows: circle, square, triangle" in capsys.readouterr().out
    assert main(["detect", "--checkpoint", ckpt, str(ok), str(junk), "--out", str(out), "--device", "cpu"]) == 2
    _one_line_error(capsys, "bad.png")
    assert len(json.loads((out / "detections.json").read_text())) == 2  # the earlier run's list, untouched
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torchvision "no box was drawn" warning
        assert main(["detect", "--checkpoint", ckpt, str(ok), "--out", str(out), "--device", "cpu",
                     "--score-threshold", "1.0"]) == 0  # fmt: skip
    report = json.loads((out / "detections.json").read_text())
    assert [r["image"] for r in report] == [str(ok)] and report[0]["detections"] == []
    assert capsys.readouterr().err == ""  # zero detections: quiet


def test_detect_16_bit_png_and_the_shipped_models_note(tmp_path, capsys):
    from ssd_tutorial.checkpoints import PRETRAINED_DIR

    if not (PRETRAINED_DIR / "tiny_shapes.pt").is_file():
        pytest.skip("tiny_shapes.pt not shipped")
    image, _ = ShapesDataset(1, image_size=128, seed=3)[0]
    deep = (image[0].numpy() * 65535).astype(np.uint16)  # [H, W] 16-bit grey
    png = tmp_path / "deep.png"
    PIL.Image.fromarray(deep).save(png)
    assert main(["detect", str(png), "--out", str(tmp_path / "d"), "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "model knows: circle, square, triangle" in out
    assert err.count("\n") == 1 and "shipped tiny_shapes model only knows generated shapes" in err
    drawn = np.asarray(PIL.Image.open(tmp_path / "d" / "deep.png"))
    expected = np.round(deep / 65535 * 255).astype(np.uint8)  # scaled to 8 bits; convert("RGB") made it all 255
    assert drawn.shape == (512, 512, 3) and (drawn[::4, ::4, 0] == expected).mean() > 0.5  # boxes cover the rest


def test_sigterm_to_a_real_training_process_exits_143_not_minus_15(tmp_path):
    import signal

    out = tmp_path / "run"
    cmd = [sys.executable, "-u", "-m", "ssd_tutorial", "train", "--num-train", "400", "--num-val", "4",
           "--batch-size", "4", "--epochs", "1", "--no-progress", "--device", "cpu", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        header = proc.stdout.readline()  # printed when the first epoch starts
        assert header.split()[:2] == ["epoch", "loss"], header + proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err.count("\n") == 1, err
    assert re.search(r"interrupted by SIGTERM (in epoch 1 after iteration \d+ of 100|before the first epoch); "
                     r"resume from .*last\.pt$", err.strip()), err  # fmt: skip
    checkpoint = torch.load(out / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == 0 and "optimizer" in checkpoint
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]  # no lock, no temp file left
