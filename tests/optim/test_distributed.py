"""The optimizer factory under DDP and FSDP2, two gloo ranks on loopback."""

from pathlib import Path

import pytest
import torch

import distributed_workers as workers

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available"),
]


def single_process(name: str) -> dict[str, torch.Tensor]:
    model = workers.make_model()
    x, y = workers.batch()
    workers.train(model, x, y, name)
    return model.state_dict()


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_ddp_matches_one_process_on_the_global_batch(name: str, tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    workers.spawn(workers.ddp_worker, name, str(out))
    ddp_state = torch.load(out, weights_only=True)
    for key, value in single_process(name).items():
        torch.testing.assert_close(ddp_state[key], value, msg=key)


def test_fsdp2_matches_one_process(tmp_path: Path) -> None:
    fsdp = pytest.importorskip("torch.distributed.fsdp")
    if not hasattr(fsdp, "fully_shard"):
        pytest.skip("this torch has no FSDP2 (torch.distributed.fsdp.fully_shard)")
    out = tmp_path / "fsdp.pt"
    workers.spawn(workers.fsdp_worker, "adamw", str(out))
    state = torch.load(out, weights_only=True)
    for key, value in single_process("adamw").items():
        torch.testing.assert_close(state[key], value, msg=key)
