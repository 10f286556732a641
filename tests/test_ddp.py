"""DDP on CPU: ``torchrun --nproc_per_node 2`` running the ``train`` command with the gloo backend.

Each rank must train on its own shard of the data, and all ranks must end with the weights rank 0 saved.
The indices each rank trained on are recorded through ``train._shard_hook`` (test instrumentation, not API).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ssd_tutorial.train import load_pretrained, params_sha256

_RECORD_AND_TRAIN = """
import json, sys
from pathlib import Path
import ssd_tutorial.train as train
from ssd_tutorial.cli import main
from ssd_tutorial.distributed import RecordingSampler, distributed_env, rebuild_loader

recorders, real_fit = [], train.fit

def record(loader):
    recorders.append(RecordingSampler(loader.sampler))
    return rebuild_loader(loader, recorders[-1])

def fit(model, *args, **kwargs):
    history = real_fit(model, *args, **kwargs)
    rank, world_size = distributed_env()
    indices = {str(epoch + 1): seen for epoch, seen in recorders[0].by_epoch.items()}
    Path(OUT, f"rank{rank}_indices.json").write_text(json.dumps(
        {"world_size": world_size, "indices": indices, "params_sha256": train.params_sha256(model)}))
    return history

train._shard_hook, train.fit = record, fit
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_torchrun_two_processes_shard_the_data_and_agree_on_weights(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "record_and_train.py"
    script.write_text(_RECORD_AND_TRAIN.replace("OUT", repr(str(out))))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           "train", "--preset", "tiny_shapes", "--epochs", "2", "--num-train", "16", "--num-val", "4",
           "--batch-size", "4", "--max-iters", "2", "--out", str(out), "--no-progress", "--device", "cpu",
           "--seed", "0"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}_indices.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for epoch in ("1", "2"):
        seen0, seen1 = (r["indices"][epoch] for r in ranks)
        assert len(seen0) == len(seen1) == 8  # 2 iterations x batch 4 on each rank
        assert not set(seen0) & set(seen1), f"epoch {epoch}: both ranks trained on {set(seen0) & set(seen1)}"
        assert sorted(seen0 + seen1) == list(range(16))
    assert ranks[0]["indices"]["1"] != ranks[0]["indices"]["2"]  # DistributedSampler.set_epoch reshuffles
    assert ranks[0]["params_sha256"] == ranks[1]["params_sha256"]
    assert params_sha256(load_pretrained(out / "last.pt")) == ranks[0]["params_sha256"]
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and all("map" in h for h in history)
    assert run.stdout.count("done:") == 1  # only rank 0 prints
    assert not (out / "train.lock").exists()
