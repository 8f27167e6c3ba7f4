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
        "alexnet", "squeezenet1_0", "squeezenet1_1", "densenet121", "densenet161", "densenet169", "densenet201",
        "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
        "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf", "regnet_x_16gf",
        "regnet_x_32gf", "regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
        "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf",
    }  # fmt: skip
    assert set(TORCHVISION_NAMES) == expected


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_parameter_counts_equal_torchvision(name: str) -> None:
    # torchvision's weights carry the count of their model: no model is built (regnet_y_128gf has 645M parameters)
    expected = torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"]
    assert blockzoo.model_info(name).num_params == expected


def _two_smallest_of_each_family_and_all_small() -> list[str]:
    """The models whose outputs are compared: every one under 30M parameters, and the two smallest of each family."""
    by_family: dict[str, list[tuple[int, str]]] = {}
    for name in TORCHVISION_NAMES:
        info = blockzoo.model_info(name)
        by_family.setdefault(info.family, []).append((info.num_params, name))
    chosen = {name for members in by_family.values() for count, name in sorted(members)[:2]}
    chosen |= {name for members in by_family.values() for count, name in members if count < 30_000_000}
    return sorted(chosen)


OUTPUT_NAMES = _two_smallest_of_each_family_and_all_small()


@pytest.mark.parametrize("name", OUTPUT_NAMES)
def test_outputs_equal_torchvision_after_conversion(name: str) -> None:
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)().eval()
    ours = blockzoo.create_model(name).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
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
