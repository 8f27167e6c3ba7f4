"""blockzoo's torchvision architectures equal torchvision's: parameter counts and outputs."""

import pytest
import torch

import blockzoo
from blockzoo.errors import CheckpointError
from blockzoo.models import load_torchvision_weights

torchvision = pytest.importorskip("torchvision")

TORCHVISION_NAMES = [
    n
    for n in blockzoo.list_models()
    if hasattr(torchvision.models, n) and blockzoo.model_info(n).family != "cifar_resnet"
]


def test_the_torchvision_families_are_all_there() -> None:
    expected = {
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2",
        "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "mobilenet_v2",
        "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
        "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
        "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
        "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
    }  # fmt: skip
    assert set(TORCHVISION_NAMES) == expected


#: Over about 2 s to build both and compare on CPU; the family's smallest members stand for them (the
#: parameter count of every member is still compared, on the meta device).
SLOW_TO_COMPARE = {
    "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "efficientnet_v2_m", "efficientnet_v2_l",
}  # fmt: skip


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_parameter_counts_equal_torchvision(name: str) -> None:
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)()
    assert blockzoo.model_info(name).num_params == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("name", [n for n in TORCHVISION_NAMES if n not in SLOW_TO_COMPARE])
def test_outputs_equal_torchvision_after_conversion(name: str) -> None:
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)().eval()
    ours = blockzoo.create_model(name).eval()
    with torch.no_grad():  # random running statistics, so that the norms are really tested
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    load_torchvision_weights(ours, theirs.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


def test_conversion_refuses_another_architecture_and_changes_nothing() -> None:
    ours = blockzoo.create_model("resnet18")
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"the torchvision state_dict has 320 tensors, ZooModel resnet18 has 122"):
        load_torchvision_weights(ours, torchvision.models.resnet50().state_dict())
    wrong = torchvision.models.resnet18(num_classes=5).state_dict()
    with pytest.raises(
        CheckpointError, match=r"shapes differ.*fc\.weight \(5, 512\) -> head\.fc\.weight \(1000, 512\)"
    ):
        load_torchvision_weights(ours, wrong)
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())


def test_pretrained_torchvision_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("no network")

    # torchvision's weights API downloads through this name; no machine of ours reaches the network
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(
        CheckpointError,
        match=r"could not download torchvision's .* for 'resnet18' from https://.*no network.*load_torchvision_weights",
    ):
        blockzoo.create_model("resnet18", pretrained="torchvision")
    with pytest.raises(ValueError, match=r"pretrained must be 'torchvision' or None\. Received: pretrained='imagenet'"):
        blockzoo.create_model("resnet18", pretrained="imagenet")
