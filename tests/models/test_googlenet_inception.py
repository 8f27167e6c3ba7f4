"""GoogLeNet and Inception v3: transform_input, the left-out auxiliary classifiers, the smallest inputs."""

import functools

import pytest
import torch

import blockzoo
from blockzoo.models import load_torchvision_weights, torchvision_to_blockzoo
from blockzoo.models._inception import (
    Branches,
    TransformInput,
    basic_conv,
    googlenet_module,
    inception_a,
    inception_b,
    inception_c,
    inception_d,
    inception_e,
)
from blockzoo.testing import check_block

torchvision = pytest.importorskip("torchvision")


def test_transform_input_renormalises_an_imagenet_normalised_image_to_minus_one_one() -> None:
    # an image in [0, 1], normalised with ImageNet's statistics, comes out as (image - 0.5) / 0.5
    image = torch.rand(2, 3, 5, 5)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(TransformInput()((image - mean) / std), (image - 0.5) / 0.5)
    x = torch.randn(1, 3, 4, 4).to(memory_format=torch.channels_last)
    assert TransformInput()(x).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_transform_input_is_off_by_default_and_takes_only_three_channels(name: str) -> None:
    model = blockzoo.create_model(name, device="meta")
    assert isinstance(model.features.transform_input, torch.nn.Identity)
    assert isinstance(blockzoo.create_model(name, transform_input=True, device="meta").features[0], TransformInput)
    with pytest.raises(ValueError, match=r"transform_input=True .* needs in_channels=3\. Received: in_channels=1"):
        blockzoo.create_model(name, transform_input=True, in_channels=1, device="meta")
    with pytest.raises(TypeError, match=r"transform_input must be True or False\. Received: transform_input=1"):
        blockzoo.create_model(name, transform_input=1, device="meta")


def _torchvision_googlenet(**kwargs: object) -> torch.nn.Module:
    """torchvision's googlenet with its auxiliary classifiers (as its weights file has them) and random statistics."""
    torch.manual_seed(0)
    model = torchvision.models.googlenet(init_weights=True, aux_logits=True, **kwargs).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    return model


def test_pretrained_weights_switch_transform_input_on_as_torchvision_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models._api import WeightsEnum

    theirs = _torchvision_googlenet(transform_input=True)
    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *args, **kwargs: theirs.state_dict())
    ours = blockzoo.create_model("googlenet", pretrained="torchvision").eval()
    assert ours.model_config == {"transform_input": True}  # recorded, so save_weights and load_weights keep it
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)
    # given explicitly, as in torchvision, the option stands
    plain = blockzoo.create_model("googlenet", pretrained="torchvision", transform_input=False)
    assert isinstance(plain.features.transform_input, torch.nn.Identity)


@pytest.mark.parametrize(
    ("name", "aux"), [("googlenet", ("aux1.", "aux2.")), ("inception_v3", ("AuxLogits.",))], ids=["googlenet", "v3"]
)
def test_the_conversion_leaves_out_the_auxiliary_classifiers(name: str, aux: tuple[str, ...]) -> None:
    with torch.device("meta"):
        ours = blockzoo.create_model(name)
        with_aux = getattr(torchvision.models, name)(aux_logits=True, init_weights=False).state_dict()
        without = getattr(torchvision.models, name)(aux_logits=False, init_weights=False).state_dict()
    unused = ours.torchvision_unused_keys(list(with_aux))
    assert unused == [k for k in with_aux if k.startswith(aux)]
    assert unused
    assert not ours.torchvision_unused_keys(list(without))
    converted = torchvision_to_blockzoo(ours, with_aux)
    assert list(converted) == list(ours.state_dict())
    assert list(torchvision_to_blockzoo(ours, without)) == list(ours.state_dict())


@pytest.mark.parametrize(("name", "side"), [("googlenet", 15), ("inception_v3", 75)])
def test_the_recorded_smallest_input_is_the_smallest_that_runs(name: str, side: int) -> None:
    assert blockzoo.model_info(name).min_input_size == (side, side)  # torchvision's min_size
    with torch.device("meta"):
        model = blockzoo.create_model(name, num_classes=3).eval()
        assert model(torch.empty(1, 3, side, side)).shape == (1, 3)
        assert blockzoo.infer_shape(model, (1, 3, side, side)) == (1, 3)
        with pytest.raises(RuntimeError, match="size"):
            model(torch.empty(1, 3, side - 1, side - 1))


def test_an_inception_module_concatenates_its_branches() -> None:
    torch.manual_seed(0)
    conv, pool = basic_conv(8, 4, 3), torch.nn.MaxPool2d(3, stride=1, padding=1)
    block = Branches(8, {"conv": conv, "pool": pool}).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.cat([conv(x), pool(x)], dim=1))
    assert block.out_channels == 12
    assert block.output_shape((2, 8, 6, 6)) == (2, 12, 6, 6)
    assert [k.split(".")[0] for k in block.state_dict()] == ["conv"] * 6
    with pytest.raises(blockzoo.InputError, match=r"Branches"):
        block(torch.randn(2, 6, 6, 8))


def test_load_torchvision_weights_gives_torchvisions_transformed_outputs() -> None:
    theirs = _torchvision_googlenet(transform_input=True)
    ours = blockzoo.create_model("googlenet", transform_input=True, device="meta").to_empty(device="cpu")
    load_torchvision_weights(ours, theirs.state_dict()).eval()
    x = torch.randn(2, 3, 15, 15)  # the smallest input
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


#: Each kind of Inception module on a small input (torchvision's widths; googlenet's as given).
MODULES = {
    "googlenet": (functools.partial(googlenet_module, 8, (4, 4, 6, 2, 3, 5)), (2, 8, 6, 6)),
    "a": (functools.partial(inception_a, 8, 4), (2, 8, 5, 5)),
    "b": (functools.partial(inception_b, 8), (2, 8, 7, 7)),
    "c": (functools.partial(inception_c, 8, 4), (2, 8, 5, 5)),
    "d": (functools.partial(inception_d, 8), (2, 8, 7, 7)),
    "e": (functools.partial(inception_e, 8), (2, 8, 3, 3)),
}


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_every_inception_module_keeps_the_block_contract(kind: str) -> None:
    # compile and export run on the whole models (tests/models/test_zoo.py, tests/inspect/test_export.py); the 8x8
    # modules have fixed widths of up to 448 (3.5M parameters), slow in bfloat16 on a CPU: float32 only for them
    factory, shape = MODULES[kind]
    dtypes = [torch.float32] if kind in ("d", "e") else [torch.float32, torch.float64, torch.bfloat16]
    check_block(factory, shape, dtypes=dtypes, compile=False, export=False)
