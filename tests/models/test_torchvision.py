"""blockzoo's torchvision architectures equal torchvision's: parameter counts and outputs."""

import pytest
import torch

import blockzoo
from blockzoo.errors import CheckpointError
from blockzoo.models import load_torchvision_weights
from support import fit_side

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
        "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
        "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14",
        "alexnet", "squeezenet1_0", "squeezenet1_1", "densenet121", "densenet161", "densenet169", "densenet201",
        "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
        "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf", "regnet_x_16gf",
        "regnet_x_32gf", "regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
        "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf",
        "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
        "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
        "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
        "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l", "googlenet", "inception_v3", "maxvit_t",
        "swin_t", "swin_s", "swin_b",
    }  # fmt: skip
    assert set(TORCHVISION_NAMES) == expected


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_parameter_counts_equal_torchvision(name: str) -> None:
    # torchvision's weights carry the count of their model: no model is built (regnet_y_128gf has 645M parameters).
    # A ViT's position embedding grows with the image, so take the weights made for our default image size.
    side = blockzoo.model_info(name).input_size[-1]
    weights = [w for w in torchvision.models.get_model_weights(name) if w.transforms().crop_size == [side]]
    assert weights, f"torchvision has no {name} weights for {side}x{side} images"
    assert blockzoo.model_info(name).num_params == weights[0].meta["num_params"] - AUX_PARAMS.get(name, 0)


#: The parameters of the auxiliary classifier that torchvision's inception_v3 keeps with its weights (and counts in
#: their ``num_params``), and blockzoo's leaves out: an InceptionAux on 768 channels for 1000 classes. (googlenet's
#: count leaves its auxiliary classifiers out: torchvision drops them after loading its weights.)
AUX_PARAMS = {"inception_v3": (768 * 128 + 2 * 128) + (128 * 768 * 5 * 5 + 2 * 768) + (768 * 1000 + 1000)}


def test_the_left_out_auxiliary_classifier_is_torchvisions() -> None:
    with torch.device("meta"):
        aux = torchvision.models.inception.InceptionAux(768, 1000)
        plain = torchvision.models.inception_v3(aux_logits=False, init_weights=False)
    assert sum(p.numel() for p in aux.parameters()) == AUX_PARAMS["inception_v3"]
    assert sum(p.numel() for p in plain.parameters()) == blockzoo.model_info("inception_v3").num_params


#: Models whose position embeddings are built for one image size: both sides are built for the small input.
IMAGE_SIZE = {name: {"image_size": 64} for name in TORCHVISION_NAMES if name.startswith("vit_")}


#: Options of torchvision's builders: googlenet and inception_v3 warn (an error here) unless told how to initialise;
#: maxvit_t is built for one input size (its partitions are laid out at construction): the test's (fit_side).
TORCHVISION_OPTIONS = {
    "googlenet": {"init_weights": True},
    "inception_v3": {"init_weights": True},
    "maxvit_t": {"input_size": (221, 221)},
}


#: Families without batch norms, whose torchvision twins are built on meta and filled at random (faster than their
#: initialisation, which also starts the heads at zero and the layer scales at 1e-6: too easy to match).
RANDOM_FILL = {name for name in TORCHVISION_NAMES if name.startswith(("convnext", "vit_", "swin_"))}


@torch.no_grad()
def random_fill_(model: torch.nn.Module) -> torch.nn.Module:
    """Weights of scale 0.05 and norm scales near 1, in place; for models without floating buffers.

    Swin's integer buffers (the relative position index of each attention, empty after ``to_empty``) are
    computed again by torchvision's own method.
    """
    assert not [b for b in model.buffers() if b.is_floating_point()]
    for m in model.modules():
        if hasattr(m, "define_relative_position_index"):
            m.define_relative_position_index()
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            p.normal_(0.0, 0.05)
            if isinstance(m, torch.nn.LayerNorm) and name == "weight":
                p.add_(1.0)
    return model


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
    kwargs = IMAGE_SIZE.get(name, {})
    # no initialisation on our side: every tensor is loaded from theirs
    ours = blockzoo.create_model(name, device="meta", **kwargs).to_empty(device="cpu").eval()
    if name in RANDOM_FILL:
        with torch.device("meta"):
            theirs = getattr(torchvision.models, name)(**kwargs)
        theirs = random_fill_(theirs.to_empty(device="cpu")).eval()
    else:
        theirs = getattr(torchvision.models, name)(**kwargs, **TORCHVISION_OPTIONS.get(name, {})).eval()
        with torch.no_grad():  # random running statistics, so that the norms are really tested
            for m in theirs.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 1.5)
    load_torchvision_weights(ours, theirs.state_dict())
    # inception_v3 needs 75x75. Swin at 64x64: stage 1's 16x16 map is padded to 3 x 3 windows of 7 and shifted,
    # stage 2's 8x8 to 2 x 2 windows and shifted; stages 3 and 4 fit in one window, where torchvision does not shift
    side = fit_side(name, 64)
    x = torch.randn(2, 3, side, side)
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


def _weights_checked_for_fit() -> list[str]:
    """Every model whose torchvision weights are made for several image sizes, and the first model of each family."""
    first: dict[str, str] = {}
    for name in TORCHVISION_NAMES:
        first.setdefault(blockzoo.model_info(name).family, name)
    picked = set(first.values())
    for name in TORCHVISION_NAMES:
        entries = torchvision.models.get_model_weights(name)
        if len({w.transforms.keywords.get("crop_size") for w in entries}) > 1:
            picked.add(name)
    return [n for n in TORCHVISION_NAMES if n in picked]


class _EmptyOnMeta(torch.overrides.TorchFunctionMode):
    """Make ``torch.empty`` (where torch's layers create their weights) allocate nothing.

    Other tensors stay real: torchvision's RegNet computes its widths with tensors and ``tolist()``,
    which a ``torch.device("meta")`` context would break.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = dict(kwargs or {})
        if func is torch.empty:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


@pytest.mark.parametrize("name", _weights_checked_for_fit())
def test_pretrained_weights_fit_the_model(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # torchvision's builder, given the weights pretrained="torchvision" picks, makes the model those weights
    # are for (num_classes, a ViT's image_size ...); with the download and load skipped, its state_dict has
    # the checkpoint's shapes, which must convert to the default blockzoo model's.
    from torchvision.models._api import WeightsEnum

    from blockzoo.models._registry import model_input_size
    from blockzoo.models._torchvision import torchvision_weights

    weights = torchvision_weights(name, model_input_size(name)[-1])
    built: list[torch.nn.Module] = []
    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *args, **kwargs: {})
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", lambda self, *args, **kwargs: built.append(self))
    with _EmptyOnMeta():
        torchvision.models.get_model(name, weights=weights)
    (theirs,) = built
    ours = blockzoo.create_model(name, device="meta")
    blockzoo.models.torchvision_to_blockzoo(ours, theirs.state_dict())  # raises on any count or shape difference


def test_pretrained_weights_are_those_made_for_the_models_image_size() -> None:
    from blockzoo.models._torchvision import torchvision_weights

    vit_h = torchvision.models.ViT_H_14_Weights
    assert vit_h.DEFAULT is vit_h.IMAGENET1K_SWAG_E2E_V1  # made for 518 x 518 images
    assert torchvision_weights("vit_h_14", 224) is vit_h.IMAGENET1K_SWAG_LINEAR_V1
    assert torchvision_weights("vit_h_14", 518) is vit_h.IMAGENET1K_SWAG_E2E_V1
    vit_b = torchvision.models.ViT_B_16_Weights
    assert torchvision_weights("vit_b_16", 224) is vit_b.DEFAULT
    assert torchvision_weights("vit_b_16", 384) is vit_b.IMAGENET1K_SWAG_E2E_V1
    resnet = torchvision.models.ResNet50_Weights
    assert torchvision_weights("resnet50", 224) is resnet.DEFAULT
    assert torchvision_weights("resnet50", 160) is resnet.DEFAULT  # a CNN takes any size: the default weights


def test_pretrained_vit_at_another_image_size_asks_for_those_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def offline(self: object, *args: object, **kwargs: object) -> None:
        asked.append(self)
        raise OSError("no network")

    from torchvision.models._api import WeightsEnum

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(CheckpointError, match=r"could not download torchvision's .*IMAGENET1K_SWAG_E2E_V1"):
        blockzoo.create_model("vit_b_16", image_size=384, device="meta", pretrained="torchvision")
    assert asked == [torchvision.models.ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1]


@pytest.mark.parametrize("image_size", [8, 100, 0])
def test_vit_refuses_an_image_size_that_is_not_a_whole_grid_of_patches(image_size: int) -> None:
    # torchvision's ViT refuses such inputs in forward ("Wrong image height"); ours at construction
    with pytest.raises(ValueError, match=rf"image_size must be .*Received: image_size={image_size}"):
        blockzoo.create_model("vit_b_16", image_size=image_size, device="meta")


def test_vit_takes_any_whole_grid_of_patches() -> None:
    model = blockzoo.create_model("vit_b_32", image_size=96, device="meta")
    assert model.features.pos_embed.weight.shape == (1, 1 + 3 * 3, 768)


def test_convnext_and_vit_take_zero_init_last() -> None:
    from blockzoo.models._convnext import convnext
    from blockzoo.models._vit import vision_transformer

    torch.manual_seed(0)
    small = {
        "convnext": lambda **kw: convnext((8, 16, 16, 16), (1, 1, 2, 1), **kw),
        "vit": lambda **kw: vision_transformer(8, 2, 2, 16, 32, image_size=16, **kw),
    }
    for family, build in small.items():
        model = build(zero_init_last=True).eval()
        blocks = [m for m in model.modules() if isinstance(m, blockzoo.ResidualBlock)]
        assert len(blocks) == (5 if family == "convnext" else 4)
        for block in blocks:  # each block (each transformer half) is the identity
            x = torch.randn(2, 16, 4, 4) if family == "convnext" else torch.randn(2, 5, 16)
            x = x[:, : block.in_channels] if family == "convnext" else x
            with torch.no_grad():
                torch.testing.assert_close(block(x), x)
        assert any(p.abs().sum() > 0 for n, p in build().named_parameters() if "layer_scale" in n or "out." in n)
    for name in ("convnext_tiny", "vit_b_32"):
        with pytest.raises(TypeError, match=r"zero_init_last must be True or False\. Received: zero_init_last=1"):
            blockzoo.create_model(name, zero_init_last=1, device="meta")
