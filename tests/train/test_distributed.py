"""``fit`` and ``blockzoo train`` under torchrun: two gloo processes on loopback against one process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import Dataset

import blockzoo
from blockzoo.errors import InputError
from blockzoo.train import fit

sys.path.insert(0, str(Path(__file__).parent))  # the torchrun scripts beside this file
import distributed_fit as worker

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available"),
]

HERE = Path(__file__).parent
SRC = Path(blockzoo.__file__).parents[1]
TORCHRUN_ENV = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}


def launch(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in two processes started by torchrun (its standalone rendezvous on a free local port)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{SRC}{os.pathsep}{HERE}", **(env or {})}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environment.pop(name, None)  # torchrun sets them for its processes
    # its own session: on a timeout the workers (which may wait in a collective) are stopped with torchrun
    with subprocess.Popen(
        command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    ) as process:  # fmt: skip
        try:
            out, err = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def torchrun(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``args`` as :func:`launch` does, require that every process succeeded; their output."""
    done = launch(*args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def check_left_together(out: Path) -> None:
    """Rank 1 (which had nothing left to do) finished exiting only after rank 0 had finished its work."""
    assert float((out / "exit1.txt").read_text()) >= float((out / "end0.txt").read_text())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, list[dict[str, float]]]:
    """The reference: the same run in this process alone."""
    return worker.run("ddp", tmp_path_factory.mktemp("one"))


def check_rows(rows: list[dict[str, Any]], reference: list[dict[str, float]]) -> None:
    for row, ref in zip(rows, reference, strict=True):
        # counts of correct samples summed over the processes: the same numbers exactly
        assert row["val_accuracy"] == ref["val_accuracy"]
        assert row["train_accuracy"] == ref["train_accuracy"]
        for key in ("train_loss", "val_loss"):
            assert row[key] == pytest.approx(ref[key], rel=1e-6)


@pytest.mark.slow  # torchrun starts two Python processes that import torch
def test_two_ddp_processes_end_with_the_weights_of_one(one_process, tmp_path: Path) -> None:
    model, reference = one_process
    out = torchrun(str(HERE / "distributed_fit.py"), "ddp", str(tmp_path), cwd=tmp_path)
    assert out.count("rank-done True") == 2  # the group fit joined stays for a later fit, in both processes
    assert out.count("epoch 2/2") == 1  # rank 0 alone shows the progress
    assert "batch_size 8 in all = 2 x 4 per process" in out
    saved = torch.load(tmp_path / "weights.pt", weights_only=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(saved[key], value, msg=key)
    check_rows(json.loads((tmp_path / "rows.json").read_text()), reference)
    fresh = blockzoo.load_weights(worker.make_model(), tmp_path / "run" / "last.safetensors")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, msg=key)
    check_other_runs(tmp_path)
    check_left_together(tmp_path)


def check_other_runs(out: Path) -> None:
    """What the two processes saw in ``distributed_fit.other_runs``."""
    seen = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    # batch norm: the reported validation is that of the saved weights, and both processes end with them
    bn = blockzoo.load_weights(worker.make_bn_model(), out / "bn" / "last.safetensors")
    measured = blockzoo.train.evaluate(bn, worker.make_data()[1])
    assert seen[0]["bn_rows"][-1]["val_accuracy"] == measured.accuracy
    assert seen[0]["bn_rows"][-1]["val_loss"] == pytest.approx(measured.loss, rel=1e-6)
    assert seen[0]["bn_state"] == seen[1]["bn_state"]
    # a validation loader that differs by process: rank 0's figures and decisions (go on, best epoch) everywhere
    assert seen[0]["rows"] == seen[1]["rows"]
    assert len(seen[0]["rows"]) == 2  # rank 1 alone asked to stop after epoch 1
    assert seen[0]["weights"] == seen[1]["weights"]  # restore_best put back the same epoch's weights
    # each process its own random numbers (dropout masks), from one seed
    assert seen[0]["drawn"] != seen[1]["drawn"]


@pytest.mark.slow  # torchrun starts two Python processes that import torch
def test_a_two_process_run_resumed_ends_as_one_process_does(one_process, tmp_path: Path) -> None:
    model, reference = one_process
    out = torchrun(str(HERE / "distributed_fit.py"), "resume", str(tmp_path), cwd=tmp_path)
    assert out.count("stopped: crash") == 2  # both processes failed in epoch 2; the second fit resumed them
    saved = torch.load(tmp_path / "weights.pt", weights_only=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(saved[key], value, msg=key)
    check_rows(json.loads((tmp_path / "rows.json").read_text()), reference)
    check_left_together(tmp_path)  # the failed fit before the resumed one does not count at exit


@pytest.mark.slow  # torchrun starts two Python processes that import torch
@pytest.mark.parametrize(
    ("mode", "failing", "error"),
    [
        # rank 1 fails inside fit while rank 0 waits for it in a collective
        ("crash1", 1, "RuntimeError: crash in rank 1"),
        # rank 0 raises in its own code after fit while rank 1 waits in the next fit's first collective
        ("raise0", 0, "RuntimeError: rank 0 failed after fit"),
    ],
)
def test_a_process_that_fails_ends_the_run_with_its_error(mode: str, failing: int, error: str, tmp_path: Path) -> None:
    # the failing process must exit at once with its error (not wait at an exit barrier that the other never
    # reaches), so that torchrun stops the other
    done = launch(str(HERE / "distributed_fit.py"), mode, str(tmp_path), cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert error in out
    # it ended on its exception (exit code 1), not on an abort (-6) while exiting
    assert re.search(rf"rank\s+: {failing} \(local_rank: {failing}\)\s+exitcode\s+: 1 \(pid", out), out
    assert (tmp_path / f"exit{failing}.txt").exists()  # and ran its exit handlers to the end


@pytest.mark.slow  # torchrun starts two Python processes that import torch
def test_fsdp2_matches_one_process_and_its_weights_load_unsharded(one_process, tmp_path: Path) -> None:
    fsdp = pytest.importorskip("torch.distributed.fsdp")
    if not hasattr(fsdp, "fully_shard"):
        pytest.skip("this torch has no FSDP2 (torch.distributed.fsdp.fully_shard)")
    model, reference = one_process
    torchrun(str(HERE / "distributed_fit.py"), "fsdp", str(tmp_path), cwd=tmp_path)
    check_rows(json.loads((tmp_path / "rows.json").read_text()), reference)
    check_left_together(tmp_path)
    run = tmp_path / "run"
    assert not (run / "state.pt").exists()  # a sharded run keeps no state to resume
    fresh = blockzoo.load_weights(worker.make_model(), run / "last.safetensors")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, msg=key)


@pytest.mark.slow  # torchrun starts two Python processes that import torch
def test_the_command_line_under_torchrun_writes_each_file_once_from_rank_0(tmp_path: Path) -> None:
    out = torchrun(
        "-m", "distributed_cli", "train", "simple_cnn", "--epochs", "1", "--out", "run",
        cwd=tmp_path, env={"LOG_DIR": str(tmp_path)},
    )  # fmt: skip
    assert out.count("best: epoch 1 of 1") == 1
    loads = {r: json.loads((tmp_path / f"loads{r}.json").read_text()) for r in (0, 1)}
    assert loads[0]["end"] <= loads[1]["start"]  # rank 0 fetched the data (and weights) before the others looked
    assert (tmp_path / "rank1.txt").read_text() == ""  # rank 1 wrote nothing
    written = set((tmp_path / "rank0.txt").read_text().split())
    assert written == set(os.listdir(tmp_path / "run"))  # rank 0 wrote every file there, and nothing else is
    assert {"history.json", "curves.png", "last.safetensors", "config.json", "state.pt"} <= written
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["rows"]) == 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    blockzoo.load_weights(
        blockzoo.create_model("simple_cnn", **config["run"]["model_options"]), tmp_path / "run" / "last.safetensors"
    )


# ------------------------------------------------------------------ the shares


class Indices(Dataset[int]):
    """A Dataset (not tensors), so that its batches go through a DataLoader; each sample is its index."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def epoch_of(
    source: Any, *, world: int, rank: int, batch: int, fill: bool, epoch: int = 1
) -> tuple[list[list[int]], set[int]]:
    from blockzoo.train._batches import Batches

    batches = Batches(source, batch_size=batch, shuffle=True, seed=3, rank=rank, world_size=world, fill=fill)
    drawn = [(b[0] if isinstance(b, (tuple, list)) else b).tolist() for b in batches.epoch(epoch)]
    assert len(drawn) == batches.num_batches()
    return drawn, set(batches.fillers)


@given(st.integers(1, 40), st.integers(1, 4), st.integers(1, 4), st.booleans(), st.booleans())
def test_the_processes_shares_make_up_the_batches_of_one_process(
    n: int, world: int, per: int, fill: bool, as_dataset: bool
) -> None:
    batch = world * per
    source: Any = Indices(n) if as_dataset else (torch.arange(n), torch.zeros(n))
    one, _ = epoch_of(source, world=1, rank=0, batch=batch, fill=fill)
    shares = [epoch_of(source, world=world, rank=r, batch=batch, fill=fill) for r in range(world)]
    assert len({len(drawn) for drawn, _ in shares}) == 1  # every process runs as many batches
    for position, whole in enumerate(one):
        if world > 1 and not fill and len(whole) < world:  # training leaves out a batch too small to share
            assert position == len(one) - 1
            assert len(shares[0][0]) == position
            continue
        counted = [drawn[position] for drawn, fillers in shares if position not in fillers]
        assert [i for share in counted for i in share] == whole  # in order, each sample once
        assert max(map(len, counted)) - min(map(len, counted)) <= 1


# ------------------------------------------------------------ sync batch norm


def test_sync_batchnorm_conversion_keeps_blocks_running_their_new_norm() -> None:
    from blockzoo.train._distributed import convert_sync_batchnorm

    model = convert_sync_batchnorm(nn.Sequential(blockzoo.ConvNormAct(3, 4, 3), blockzoo.ConvNormAct(4, 4, 3)))
    ran: list[str] = []
    for block in model:
        assert isinstance(block, blockzoo.ConvNormAct)  # the blocks stay, with their other stages
        assert isinstance(block.norm, nn.SyncBatchNorm)
        block.norm.register_forward_hook(lambda m, i, o: ran.append(type(m).__name__))
    model.eval()  # torch's SyncBatchNorm runs on a CPU in eval mode only
    assert model(torch.randn(2, 3, 6, 6)).shape == (2, 4, 6, 6)
    assert ran == ["SyncBatchNorm", "SyncBatchNorm"]


def test_a_stage_replaced_by_add_module_is_the_one_that_runs() -> None:
    block = blockzoo.ConvNormAct(3, 4, 3)
    block.add_module("act", nn.Tanh())
    x = torch.randn(1, 3, 5, 5)
    assert torch.equal(block(x), torch.tanh(block.norm(block.conv(x))))


# ------------------------------------------------------------------ bad input


@pytest.fixture
def torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun's variables for rank 0 of 2; the refusals below come before any process group is joined."""
    for name, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(name, value)


def data(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 6), torch.randint(0, 3, (n,))


def test_distributed_true_needs_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InputError, match=r"distributed=True trains in the processes that torchrun starts.*"
                       r"Received: distributed=True with none of them set"):  # fmt: skip
        fit(worker.make_model(), data(), epochs=1, distributed=True, progress=False)


def test_sync_batchnorm_on_a_cpu_is_refused(torchrun_env: None) -> None:
    with pytest.raises(InputError, match=r"torch's SyncBatchNorm runs on GPUs only.*Received: sync_batchnorm=True"):
        fit(worker.make_model(), data(), epochs=1, batch_size=4, device="cpu", sync_batchnorm=True, progress=False)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(torchrun_env: None) -> None:
    with pytest.raises(InputError, match=r"global batch, split evenly.*Received: batch_size=7, world_size=2"):
        fit(worker.make_model(), data(), epochs=1, batch_size=7, device="cpu", progress=False)


def test_distributed_options_in_one_process_are_refused() -> None:
    with pytest.raises(InputError, match=r"apply to a distributed run.*Received: strategy='fsdp'"):
        fit(worker.make_model(), data(), epochs=1, strategy="fsdp", distributed=False, progress=False)
    with pytest.raises(ValueError, match=r"strategy must be one of 'ddp', 'fsdp'. Received: strategy='zero'"):
        fit(worker.make_model(), data(), epochs=1, strategy="zero", progress=False)


@pytest.fixture
def group_of_one(tmp_path: Path):
    """A gloo group of one process, which ``distributed=True`` joins; fit leaves it alone."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_fsdp_refuses_what_it_does_not_keep(group_of_one: None, tmp_path: Path) -> None:
    fsdp = {"epochs": 1, "distributed": True, "strategy": "fsdp", "progress": False}
    with pytest.raises(InputError, match=r"strategy='fsdp' does not keep.*Received: strategy='fsdp' with ema"):
        fit(worker.make_model(), data(), ema=0.9, **fsdp)
    with pytest.raises(InputError, match=r"does not keep.*Received: strategy='fsdp' with restore_best, resume"):
        fit(worker.make_model(), data(), restore_best=True, resume=tmp_path, **fsdp)
    import torch.distributed as dist

    assert dist.is_initialized()  # the caller's group is still there


def test_fsdp_refuses_a_model_with_regularizers(group_of_one: None) -> None:
    from blockzoo.regularization import L1, L2, attach_penalty

    model = worker.make_model()
    attach_penalty(model, L2(0.5))
    attach_penalty(model, L1(0.1), include="2.*")
    with pytest.raises(
        InputError, match=r"regularizers attached.*Received: strategy='fsdp' with 2 attached \(penalty\)"
    ):
        fit(model, data(), epochs=1, distributed=True, strategy="fsdp", progress=False)


def test_a_model_already_wrapped_for_ddp_is_refused(group_of_one: None) -> None:
    wrapped = nn.parallel.DistributedDataParallel(worker.make_model())
    with pytest.raises(InputError, match=r"pass the model inside the wrapper.*Received: model=DistributedDataParallel"):
        fit(wrapped, data(), epochs=1, distributed=True, progress=False)


def test_a_dataloader_keeps_its_batch_size_whatever_fit_s(torchrun_env: None) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from blockzoo.train import Trainer

    loader = DataLoader(TensorDataset(*data()), batch_size=4)
    trainer = Trainer(worker.make_model(), loader, epochs=1, batch_size=7, device="cpu", progress=False)
    assert trainer.distributed is not None
    assert trainer.distributed.world_size == 2


def test_a_gpu_index_other_than_the_local_rank_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from blockzoo.train._distributed import Distributed

    monkeypatch.setenv("LOCAL_RANK", "1")
    d = Distributed(2, strategy="ddp", sync_batchnorm=False)
    assert d.device(torch.device("cuda")) == torch.device("cuda", 1)
    assert d.device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert d.device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(
        InputError, match=r"GPU of its LOCAL_RANK.*Received: device='cuda:0' in the process of LOCAL_RANK=1"
    ):
        d.device(torch.device("cuda", 0))


def test_torchrun_variables_that_are_not_numbers_are_refused(
    torchrun_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match=r"WORLD_SIZE must be a whole number.*Received: WORLD_SIZE='two'"):
        fit(worker.make_model(), data(), epochs=1, progress=False)


def test_nccl_is_joined_bound_to_the_process_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    from blockzoo.train import _distributed

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(dist, "init_process_group", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(_distributed, "_group_size", lambda: None)
    monkeypatch.setattr(_distributed.atexit, "register", lambda fn: None)
    _distributed.Distributed(2, strategy="ddp", sync_batchnorm=False).start(torch.device("cuda", 0))
    assert calls == [(("nccl",), {"device_id": torch.device("cuda", 0)})]  # no barrier warns of an unknown GPU


def test_user_loaders_that_would_repeat_or_overlap_samples_are_refused(group_of_one: None) -> None:
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    dataset = TensorDataset(*data())
    with pytest.raises(
        InputError, match=r"train_data: .*DistributedSampler.*Received: a DataLoader with SequentialSampler"
    ):
        fit(worker.make_model(), DataLoader(dataset), epochs=1, distributed=True, progress=False)
    padded = DataLoader(dataset, sampler=DistributedSampler(dataset))
    with pytest.raises(InputError, match=r"val_data: a DistributedSampler pads.*Received: a DataLoader with Distr"):
        fit(worker.make_model(), data(), val_data=padded, epochs=1, distributed=True, progress=False)


def test_resuming_with_another_number_of_processes_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit(worker.make_model(), data(), epochs=1, batch_size=4, progress=False, seed=0, out_dir=run)
    state = torch.load(run / "state.pt", weights_only=True)
    state["world_size"] = 2  # as a run under torchrun --nproc-per-node 2 records it
    torch.save(state, run / "state.pt")
    with pytest.raises(InputError, match=r"trained in 2 process.*Received: world_size=1 \(the run had 2\)"):
        fit(worker.make_model(), data(), epochs=2, batch_size=4, progress=False, seed=0, resume=run)


def test_a_distributed_run_of_one_process_matches_a_plain_one(group_of_one: None, tmp_path: Path) -> None:
    plain = worker.make_model()
    fit(plain, data(), epochs=1, batch_size=4, progress=False, seed=0)
    joined = worker.make_model()
    fit(joined, data(), epochs=1, batch_size=4, progress=False, seed=0, distributed=True)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(joined.state_dict()[key], value, msg=key)


def test_the_command_line_refuses_distributed_flags_in_one_process(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blockzoo.cli import main

    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    status = main(["train", "simple_cnn", "--epochs", "1", "--strategy", "fsdp", "--out", str(tmp_path / "run")])
    assert status == 2
    assert "apply to a distributed run" in capsys.readouterr().err
    assert not (tmp_path / "run" / "state.pt").exists()
