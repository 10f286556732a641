"""Tests for train.py, checkpoints.py, distributed.py (single process) and monitoring.py."""

from __future__ import annotations

import json
import math
import os
import random
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from ssd_tutorial import train as train_module
from ssd_tutorial.checkpoints import load_checkpoint, load_pretrained, rng_state, save_checkpoint, write_atomic
from ssd_tutorial.config import TINY_SHAPES
from ssd_tutorial.data import ShapesDataset, collate_detection
from ssd_tutorial.distributed import RecordingSampler, rebuild_loader, seed_epoch
from ssd_tutorial.model import build_ssd
from ssd_tutorial.train import PRETRAINED_DIR, collect_detections, fit, lr_factor, resolve_amp


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_ssd(TINY_SHAPES)


def _loader(n: int = 16, batch_size: int = 4, seed: int = 0, shuffle: bool = True) -> DataLoader:
    return DataLoader(ShapesDataset(n, image_size=TINY_SHAPES.image_size, seed=seed), batch_size=batch_size,
                      shuffle=shuffle, collate_fn=collate_detection)  # fmt: skip


FAST = dict(optimizer="adamw", lr=1e-3, weight_decay=1e-4, warmup_iters=2, schedule="cosine", progress=False)


def _weights_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- learning-rate schedule


def test_lr_factor_warmup_and_step_hand_worked():
    kw = dict(iters_per_epoch=10, total_iters=100, warmup_iters=5, schedule="step", step_size=3, gamma=0.1)
    assert lr_factor(0, **kw) == pytest.approx(0.001)
    assert lr_factor(2, **kw) == pytest.approx(0.001 + 0.999 * 2 / 5)
    assert lr_factor(5, **kw) == 1.0
    assert lr_factor(29, **kw) == 1.0  # epoch 2: still the first step
    assert lr_factor(30, **kw) == pytest.approx(0.1)  # epoch 3
    assert lr_factor(60, **kw) == pytest.approx(0.01)  # epoch 6


def test_lr_factor_cosine_and_constant():
    kw = dict(iters_per_epoch=10, total_iters=100, warmup_iters=0, step_size=3, gamma=0.1)
    assert lr_factor(0, schedule="cosine", **kw) == 1.0
    assert lr_factor(50, schedule="cosine", **kw) == pytest.approx(0.5)
    assert lr_factor(100, schedule="cosine", **kw) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(70, schedule="constant", **kw) == 1.0


def test_fit_steps_the_lr_per_iteration():
    model = _model()
    history = fit(model, _loader(8), epochs=2, max_iters=1, optimizer="sgd", lr=0.1, warmup_iters=0,
                  schedule="step", step_size=1, gamma=0.5, progress=False)  # fmt: skip
    assert [h["lr"] for h in history] == pytest.approx([0.05, 0.025])  # x0.5 after epochs 1 and 2


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    images, targets = next(iter(_loader(4)))
    sum(model(images, targets).values()).backward()
    opt.step()
    sched.step()
    path = save_checkpoint(tmp_path / "c.pt", model, opt, sched, epoch=3, metrics={"best": 0.5}, extra={"note": "x"})
    raw = torch.load(path, weights_only=True)  # plain data only: no pickled code needed
    assert raw["epoch"] == 3 and raw["config"] == TINY_SHAPES.to_dict()
    assert raw["class_names"] == list(TINY_SHAPES.class_names)
    assert raw["metrics"] == {"best": 0.5} and raw["extra"] == {"note": "x"}

    other = _model(seed=1)
    opt2 = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    assert not _weights_equal(model, other)
    load_checkpoint(path, other, opt2, sched2)
    assert _weights_equal(model, other)
    assert sched2.last_epoch == 1 and opt2.param_groups[0]["lr"] == pytest.approx(0.05)
    for p in model.parameters():
        assert torch.equal(
            opt.state[p]["momentum_buffer"],
            opt2.state[dict(zip(model.parameters(), other.parameters()))[p]]["momentum_buffer"],
        )


def test_rng_state_is_restored(tmp_path):
    save_checkpoint(tmp_path / "c.pt", _model())
    expected = (torch.rand(3), np.random.rand(3), random.random())
    ckpt = load_checkpoint(tmp_path / "c.pt")
    from ssd_tutorial.checkpoints import restore_rng_state

    restore_rng_state(ckpt["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]
    assert set(rng_state()) >= {"torch", "numpy", "python"}


def test_truncated_checkpoint_raises_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"c\.pt.*truncated"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"c\.pt"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_non_weights_only_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "obj": _Custom()}, path)
    with pytest.raises(ValueError, match="evil.pt"):
        load_checkpoint(path)


class _Custom:
    pass


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = _model()
    path = save_checkpoint(tmp_path / "last.pt", model, epoch=1)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the temp file is gone
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1


def test_write_atomic_creates_parent_folders(tmp_path):
    write_atomic(tmp_path / "a" / "b" / "x.pt", {"model": {}})
    assert torch.load(tmp_path / "a" / "b" / "x.pt", weights_only=True) == {"model": {}}


def test_config_mismatch_names_the_fields(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model())
    other = build_ssd(TINY_SHAPES.replace(score_threshold=0.2, nms_threshold=0.5))
    with pytest.raises(ValueError, match=r"nms_threshold.*score_threshold") as info:
        load_checkpoint(path, other)
    assert "image_size" not in str(info.value)


def test_load_without_optimizer_state_is_an_error(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "c.pt", model)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_load_pretrained_from_a_fit_checkpoint(tmp_path):
    model = _model()
    fit(model, _loader(8), epochs=1, max_iters=1, out_dir=tmp_path, **FAST)
    loaded = load_pretrained(tmp_path / "last.pt")
    assert not loaded.training and loaded.cfg == TINY_SHAPES
    assert _weights_equal(model, loaded)
    half = {"model": {k: v.half() for k, v in model.state_dict().items()}, "config": TINY_SHAPES.to_dict()}
    write_atomic(tmp_path / "half.pt", half)
    from_half = load_pretrained(str(tmp_path / "half.pt"))
    assert all(p.dtype == torch.float32 for p in from_half.parameters())
    with pytest.raises(ValueError, match="no pretrained model 'nope'"):
        load_pretrained("nope")


@pytest.mark.skipif(not (PRETRAINED_DIR / "tiny_shapes.pt").is_file(), reason="tiny_shapes.pt not shipped yet")
def test_shipped_tiny_shapes_checkpoint():
    path = PRETRAINED_DIR / "tiny_shapes.pt"
    assert path.stat().st_size <= 8 * 1024 * 1024
    model = load_pretrained("tiny_shapes")
    assert not model.training and model.cfg == TINY_SHAPES
    images, targets = next(iter(_loader(8, batch_size=8, seed=1000, shuffle=False)))
    from ssd_tutorial.evaluate import mean_average_precision

    detections = model(images)
    assert mean_average_precision(detections, targets, method="all_points")["map"] > 0.8


# ---------------------------------------------------------------- fit


def test_fit_writes_history_and_checkpoints(tmp_path):
    lines: list[str] = []
    history = fit(_model(), _loader(8), epochs=2, max_iters=1, val_loader=_loader(4, shuffle=False, seed=1),
                  out_dir=tmp_path, log_fn=lines.append, seed=0, **FAST)  # fmt: skip
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:
        assert set(h) == {"epoch", "loss", "loss_loc", "loss_cls", "lr", "images_per_s", "map"}
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in h.values())
        assert h["loss"] == pytest.approx(h["loss_loc"] + h["loss_cls"])
        assert 0.0 <= h["map"] <= 1.0
    assert lines[0].split()[:2] == ["epoch", "loss"] and len(lines) == 3
    assert {p.name for p in tmp_path.iterdir()} >= {"last.pt", "best.pt", "history.json"}
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 2 and last["metrics"]["history"] == history
    best_epoch = max(history, key=lambda h: h["map"])["epoch"]
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == best_epoch
    assert json.loads((tmp_path / "history.json").read_text()) == history


def test_best_without_validation_is_the_lowest_loss(tmp_path):
    history = fit(_model(), _loader(8), epochs=3, max_iters=1, out_dir=tmp_path, seed=0, **{**FAST, "lr": 1e-2})
    best = min(history, key=lambda h: h["loss"])
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt["epoch"] == best["epoch"] and ckpt["metrics"]["best"] == pytest.approx(best["loss"])


class _Interrupted(Exception):
    pass


def _interrupt_after_epoch_1(line: str) -> None:
    if line.split()[0] == "1":  # the table row of epoch 1, printed after last.pt is written
        raise _Interrupted


@pytest.mark.parametrize("seed", [0, None])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, seed):
    kwargs = dict(epochs=2, seed=seed, max_iters=2, **FAST)
    torch.manual_seed(123)  # the data order of an unseeded run comes from the global RNG
    straight = _model()
    fit(straight, _loader(), **kwargs)

    torch.manual_seed(123)
    with pytest.raises(_Interrupted):
        fit(_model(), _loader(), out_dir=tmp_path, log_fn=_interrupt_after_epoch_1, **kwargs)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    torch.manual_seed(999)  # resuming must not depend on the caller's RNG state
    resumed = _model(seed=5)
    history = fit(resumed, _loader(), resume=tmp_path / "last.pt", **kwargs)
    assert [h["epoch"] for h in history] == [1, 2]
    assert _weights_equal(straight, resumed)


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    model = _model()
    first = fit(model, _loader(8), epochs=1, max_iters=1, out_dir=tmp_path, seed=0, **FAST)
    again = fit(_model(seed=3), _loader(8), epochs=1, resume=tmp_path / "last.pt", seed=0, **FAST)
    assert again == first


def test_fit_from_weights_only_checkpoint_starts_at_epoch_zero(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "w.pt", model)
    history = fit(_model(seed=2), _loader(8), epochs=1, max_iters=1, resume=tmp_path / "w.pt", **FAST)
    assert [h["epoch"] for h in history] == [1]


def test_seed_makes_epoch_order_a_function_of_seed_and_epoch():
    loader = _loader(16)
    recorder = RecordingSampler(loader.sampler)
    orders = []
    for epoch in (0, 1, 0):
        seed_epoch(7, epoch)
        orders.append(list(iter(recorder)))
    assert orders[0] == orders[2] and orders[0] != orders[1]
    assert sorted(orders[0]) == list(range(16))


def test_shard_hook_sees_each_epoch_and_max_iters_fetches_no_extra_batch(monkeypatch):
    recorders = []

    def record(loader):
        recorders.append(RecordingSampler(loader.sampler))
        return rebuild_loader(loader, recorders[-1])

    monkeypatch.setattr(train_module, "_shard_hook", record)
    fit(_model(), _loader(16), epochs=2, max_iters=2, seed=0, **FAST)
    (recorder,) = recorders
    assert set(recorder.by_epoch) == {0, 1}
    for seen in recorder.by_epoch.values():
        assert len(seen) == 8 and len(set(seen)) == 8  # 2 iterations x 4 images: the third batch is never loaded
    assert recorder.by_epoch[0] != recorder.by_epoch[1]


def test_resolve_amp_defaults_and_errors():
    assert resolve_amp(None, "cpu") is None and resolve_amp(False, "cuda") is None
    assert resolve_amp(None, "cuda") is torch.float16 and resolve_amp(True, "cuda") is torch.float16
    assert resolve_amp("bf16", "cpu") is torch.bfloat16 and resolve_amp("fp16", "cuda:1") is torch.float16
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_amp("fp16", "cpu")
    with pytest.raises(ValueError, match="'fp16' or 'bf16', got 'float8'"):
        resolve_amp("float8", "cuda")


def test_fit_bf16_autocast_on_cpu_trains_in_bfloat16(tmp_path):
    model = _model()
    seen = []
    hook = model.cls_heads[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    history = fit(model, _loader(8), epochs=1, amp="bf16", device="cpu", out_dir=tmp_path, **FAST)
    hook.remove()
    assert seen and all(d is torch.bfloat16 for d in seen)  # the convolutions ran under bf16 autocast
    assert all(p.dtype is torch.float32 for p in model.parameters())  # master weights stay float32
    assert math.isfinite(history[0]["loss"])
    checkpoint = load_checkpoint(tmp_path / "last.pt", _model())
    assert checkpoint.get("scaler") is None  # bf16 needs no GradScaler


def test_fit_on_epoch_end_gets_each_record_after_its_checkpoint(tmp_path):
    seen = []

    def on_epoch_end(record):
        saved = load_checkpoint(tmp_path / "last.pt")
        seen.append((record, saved["epoch"]))
        record["loss"] = -1.0  # a copy: the history is not changed through it

    history = fit(_model(), _loader(8), epochs=2, max_iters=1, out_dir=tmp_path, on_epoch_end=on_epoch_end, **FAST)
    assert [(r["epoch"], e) for r, e in seen] == [(1, 1), (2, 2)]
    assert all(h["loss"] > 0 for h in history) and set(seen[0][0]) == set(history[0])


def test_fit_rejects_bad_arguments(tmp_path):
    model, loader = _model(), _loader(4)
    with pytest.raises(ValueError, match="CUDA"):
        fit(model, loader, epochs=1, amp=True, device="cpu", progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, loader, epochs=0)
    with pytest.raises(ValueError, match="schedule"):
        fit(model, loader, epochs=1, schedule="linear")
    with pytest.raises(ValueError, match="optimizer"):
        fit(model, loader, epochs=1, optimizer="adam", progress=False)
    with pytest.raises(ValueError, match="out_dir"):
        fit(model, loader, epochs=1, tensorboard=True)


class _NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, images, targets):
        return {"loss_loc": self.w * float("nan"), "loss_cls": self.w}


def test_non_finite_loss_stops_with_a_clear_error():
    with pytest.raises(FloatingPointError, match="epoch 1, iteration 0"):
        fit(_NaNModel(), _loader(4), epochs=1, progress=False)


def test_user_optimizer_and_channels_last_and_grad_clip():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    history = fit(model, _loader(8), epochs=1, optimizer=opt, warmup_iters=0, schedule="constant",
                  channels_last=True, grad_clip=1.0, progress=False)  # fmt: skip
    assert history[0]["lr"] == 0.01
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_collect_detections_restores_the_mode():
    model = _model()
    model.train()
    detections, targets = collect_detections(model, _loader(6, batch_size=4, shuffle=False), max_batches=1)
    assert model.training and len(detections) == len(targets) == 4
    assert set(detections[0]) == {"boxes", "scores", "labels"}


# ---------------------------------------------------------------- monitoring


def test_tensorboard_logs_scalars_and_debug_images(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(_model(), _loader(8), epochs=1, val_loader=_loader(4, shuffle=False, seed=1), out_dir=tmp_path,
        tensorboard=True, **FAST)  # fmt: skip
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "train/loss_loc", "train/loss_cls", "val/AP@0.5"} <= set(tags["scalars"])
    assert len(events.Scalars("train/loss")) == 2  # one per iteration
    assert tags["images"]


def test_clearml_missing_gives_a_clear_import_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "clearml", None)
    with pytest.raises(ImportError, match=r"pip install 'ssd_tutorial\[clearml\]'"):
        fit(_model(), _loader(4), epochs=1, clearml="proj", out_dir=tmp_path, progress=False)


_CLEARML_RUN = """
import torch
from clearml import Task
from torch.utils.data import DataLoader
from ssd_tutorial.config import TINY_SHAPES
from ssd_tutorial.data import ShapesDataset, collate_detection
from ssd_tutorial.model import build_ssd
from ssd_tutorial.train import fit

Task.set_offline(True)
torch.manual_seed(0)
loader = DataLoader(ShapesDataset(2, seed=4), batch_size=2, collate_fn=collate_detection)
fit(build_ssd(TINY_SHAPES), loader, epochs=1, val_loader=loader, clearml="ssd_tutorial_test", out_dir=OUT,
    progress=False)
"""


@pytest.mark.slow
def test_clearml_offline(tmp_path):
    """Offline ClearML session (no server): scalars and debug images land in the session folder.

    Runs in a subprocess because ClearML's offline switch is process-global and cannot be turned off cleanly.
    """
    pytest.importorskip("clearml", reason="clearml is an optional extra (pip install 'ssd_tutorial[clearml]')")
    import subprocess

    cache = tmp_path / "cache"  # not HOME itself: with HOME == the cache folder the process hangs at exit
    env = {**os.environ, "CLEARML_OFFLINE_MODE": "1", "HOME": str(tmp_path), "CLEARML_CACHE_DIR": str(cache)}
    script = tmp_path / "run_clearml.py"  # a file outside the repo: with -c ClearML analyses the whole cwd repo
    script.write_text(_CLEARML_RUN.replace("OUT", repr(str(tmp_path / "run"))))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env,
                         cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (metrics,) = (cache / "offline").glob("*/metrics.jsonl")
    events = [e for line in metrics.read_text().splitlines() for e in json.loads(line)]
    scalars = {(e["metric"], e["variant"]) for e in events if e["type"] == "training_stats_scalar"}
    assert {("loss", "epoch"), ("AP@0.5", "val"), ("lr", "epoch")} <= scalars
    assert any(e["type"] == "training_debug_image" for e in events)
    assert list((cache / "offline").glob("*.zip"))


# ---------------------------------------------------------------- argument checks, devices, DDP loaders


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(grad_clip=-1.0), ValueError, r"grad_clip must be a finite number > 0, got -1.0 \(None: no clipping"),
    (dict(grad_clip=0), ValueError, "grad_clip.*0 stops learning"),
    (dict(grad_clip=float("nan")), ValueError, "grad_clip"),
    (dict(warmup_iters=-5), ValueError, "warmup_iters must be >= 0, got -5"),
    (dict(warmup_iters=2.5), TypeError, "warmup_iters must be an int, got float 2.5"),
    (dict(lr=0.0), ValueError, "lr must be a finite number > 0, got 0.0"),
    (dict(lr="0.1"), TypeError, "lr must be a number, got str"),
    (dict(momentum=1.0), ValueError, "momentum must be a finite number >= 0 and < 1"),
    (dict(weight_decay=-1e-4), ValueError, "weight_decay"),
    (dict(gamma=0), ValueError, "gamma"),
    (dict(step_size=0), ValueError, "step_size must be >= 1"),
    (dict(eval_every=0), ValueError, "eval_every must be >= 1"),
    (dict(max_iters=0), ValueError, "max_iters must be >= 1"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(epochs=True), TypeError, "epochs must be an int, got bool"),
    (dict(val_loader=[1]), TypeError, "val_loader must be a torch.utils.data.DataLoader"),
    (dict(device="nope"), ValueError, "device 'nope' is not a device name; available here: cpu"),
])  # fmt: skip
def test_fit_names_the_bad_argument(kwargs, error, match):
    args = {"epochs": 1, **FAST, **kwargs}
    with pytest.raises(error, match=match):
        fit(_model(), _loader(4), **args)


def test_fit_wants_a_model_and_a_dataloader():
    with pytest.raises(TypeError, match="train_loader must be a torch.utils.data.DataLoader .* got list"):
        fit(_model(), [1, 2, 3], epochs=1)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        fit("ssd", _loader(4), epochs=1)


def test_resolve_device_names_what_is_available():
    from ssd_tutorial.distributed import available_devices, resolve_device

    assert resolve_device("cpu") == torch.device("cpu") and "cpu" in available_devices()
    with pytest.raises(ValueError, match=r"device 'nope' is not a device name; available here: cpu"):
        resolve_device("nope")
    with pytest.raises(TypeError, match="device must be a str or torch.device, got int"):
        resolve_device(0)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=f"'cuda:{count}' is not available"):
        resolve_device(f"cuda:{count}")  # one past the last GPU (cuda:0 on a machine without one)


def test_rebuild_loader_keeps_every_option():
    loader = DataLoader(ShapesDataset(8, image_size=TINY_SHAPES.image_size), batch_size=2, num_workers=1,
                        prefetch_factor=3, timeout=7.0, pin_memory=False, drop_last=True, persistent_workers=True,
                        collate_fn=collate_detection)  # fmt: skip
    copy = rebuild_loader(loader, torch.utils.data.SequentialSampler(loader.dataset))
    for name in ("batch_size", "num_workers", "prefetch_factor", "timeout", "drop_last", "persistent_workers",
                 "collate_fn", "pin_memory", "worker_init_fn", "generator", "multiprocessing_context"):  # fmt: skip
        assert getattr(copy, name) == getattr(loader, name), name


def test_distributed_loader_shards_or_refuses():
    from torch.utils.data import DistributedSampler, WeightedRandomSampler

    from ssd_tutorial.distributed import distributed_loader

    shuffled = distributed_loader(_loader(8), rank=1, world_size=2, seed=0)
    assert isinstance(shuffled.sampler, DistributedSampler) and shuffled.sampler.shuffle
    assert len(list(shuffled.sampler)) == 4 and shuffled.batch_size == 4
    dataset = ShapesDataset(8, image_size=TINY_SHAPES.image_size)
    weighted = DataLoader(dataset, batch_size=2, sampler=WeightedRandomSampler([1.0] * 8, 8))
    with pytest.raises(ValueError, match="uses a WeightedRandomSampler, which DistributedSampler cannot reproduce"):
        distributed_loader(weighted, rank=0, world_size=2, seed=0)
    with pytest.raises(ValueError, match="custom batch_sampler"):
        distributed_loader(DataLoader(dataset, batch_sampler=[[0, 1]]), rank=0, world_size=2, seed=0)


# ---------------------------------------------------------------- interruptions and non-finite losses


class _SignalAt(torch.utils.data.Dataset):
    """ShapesDataset that raises ``signum`` in this process while item number ``at`` (0-based) is loaded."""

    def __init__(self, n: int, signum: int | None = None, at: int = 0) -> None:
        self.data, self.signum, self.at, self.calls = ShapesDataset(n, image_size=TINY_SHAPES.image_size), signum, at, 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        if self.signum is not None and self.calls == self.at:
            import signal

            signal.raise_signal(self.signum)
        self.calls += 1
        return self.data[i]


def _signal_loader(signum=None, at=0) -> DataLoader:
    return DataLoader(_SignalAt(16, signum, at), batch_size=4, shuffle=True, collate_fn=collate_detection)


def _same_history(a: list[dict], b: list[dict]) -> bool:
    keys = ("epoch", "loss", "loss_loc", "loss_cls", "lr")
    return [[h[k] for k in keys] for h in a] == [[h[k] for k in keys] for h in b]


@pytest.mark.parametrize("seed", [0, None])
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_mid_epoch_saves_a_checkpoint_that_resumes_bit_exactly(tmp_path, seed, signame):
    import signal

    kwargs = dict(epochs=2, seed=seed, max_iters=3, **FAST)
    torch.manual_seed(123)
    straight = _model()
    expected = fit(straight, _signal_loader(), **kwargs)

    torch.manual_seed(123)
    with pytest.raises(train_module.TrainingInterrupted, match=rf"{signame} in epoch 1 after iteration 1 of 3; "
                                                               rf"resume from .*last\.pt") as info:  # fmt: skip
        fit(_model(), _signal_loader(getattr(signal, signame), at=6), out_dir=tmp_path, **kwargs)  # in batch 2
    assert isinstance(info.value, KeyboardInterrupt) and info.value.signum == getattr(signal, signame)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 0 and checkpoint["extra"]["interrupted"]["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file, lock released
    torch.manual_seed(999)
    resumed = _model(seed=5)
    history = fit(resumed, _signal_loader(), resume=tmp_path / "last.pt", out_dir=tmp_path, **kwargs)
    assert _weights_equal(straight, resumed) and _same_history(history, expected)


def test_signal_during_the_optimizer_step_waits_for_the_step(tmp_path):
    import signal

    kwargs = dict(epochs=1, seed=0, max_iters=3, **FAST)
    straight = _model()
    fit(straight, _signal_loader(), **kwargs)

    model = _model()
    steps = []
    param = next(model.parameters())

    def ctrl_c_in_second_backward(grad):
        steps.append(1)
        if len(steps) == 2:
            signal.raise_signal(signal.SIGINT)

    param.register_hook(ctrl_c_in_second_backward)
    with pytest.raises(train_module.TrainingInterrupted, match="after iteration 2 of 3"):
        fit(model, _signal_loader(), out_dir=tmp_path, **kwargs)  # SIGINT in the 2nd backward: that step completes
    resumed = _model(seed=5)
    fit(resumed, _signal_loader(), resume=tmp_path / "last.pt", **kwargs)
    assert _weights_equal(straight, resumed)


def test_signal_at_an_epoch_boundary_keeps_that_epochs_checkpoint(tmp_path):
    import signal

    def on_epoch_end(record):
        if record["epoch"] == 1:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(train_module.TrainingInterrupted, match="after epoch 1; resume from"):
        fit(_model(), _loader(8), epochs=2, max_iters=1, out_dir=tmp_path, on_epoch_end=on_epoch_end, **FAST)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 1 and "interrupted" not in checkpoint["extra"]


class _NaNAt(nn.Module):
    """A loss (w - 1)^2 + 1 that turns NaN from call ``at`` on."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.w, self.at, self.calls = nn.Parameter(torch.zeros(())), at, 0

    def forward(self, images, targets):
        self.calls += 1
        bad = float("nan") if self.calls > self.at else 0.0
        return {"loss_loc": (self.w - 1) ** 2 + bad, "loss_cls": self.w * 0 + 1}


def test_non_finite_loss_names_the_last_finite_one_and_keeps_the_checkpoint(tmp_path):
    kwargs = dict(epochs=3, optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, warmup_iters=0,
                  schedule="constant", progress=False, out_dir=tmp_path)  # fmt: skip
    expected = r"loss is nan at epoch 2, iteration 1 .* last finite loss was 1\.\d+ at iteration 0 in this epoch"
    with pytest.raises(FloatingPointError, match=expected + "; the last checkpoint is kept"):
        fit(_NaNAt(3), _loader(8), **kwargs)  # 2 iterations per epoch: call 4 is epoch 2, iteration 1
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 1 and torch.isfinite(checkpoint["model"]["w"])
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 1
