"""Every registered model: builds, runs, trains, saves, compiles; and the registry's rules."""

import copy
import math
from pathlib import Path

import pytest
import torch

import blockzoo
from blockzoo import UnknownNameError, create_model, list_models, model_info
from support import CUDA, SMALL_MODEL_PARAMS, builder_configuration, fit_side, representative_models

NAMES = list_models()
#: The smallest model of each family and configuration: the generic checks below build, train and compile these.
REPRESENTATIVES = representative_models()


def small_input(name: str, batch: int) -> torch.Tensor:
    c, h, w = model_info(name).input_size
    side = fit_side(name, 64) if h >= 224 else h  # keep ImageNet families fast: 64x64 instead of 224x224
    return torch.randn(batch, c, side, side if w == h else w)


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_model_contract(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    torch.manual_seed(0)
    twin = create_model(name, num_classes=7)
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"same seed, different {k}"

    meta = create_model(name, num_classes=7, device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())

    model.eval()
    with torch.no_grad():
        for batch in (1, 2):
            x = small_input(name, batch)
            out = model(x)
            assert out.shape == (batch, 7)
            assert torch.isfinite(out).all()
            assert blockzoo.infer_shape(model, tuple(x.shape)) == out.shape

    model.train()
    model(small_input(name, 2)).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters()), "a parameter got no gradient"

    model.eval()
    x = small_input(name, 2)
    path = blockzoo.save_weights(model, tmp_path / f"{name}.safetensors")
    reloaded = blockzoo.load_weights(create_model(name, num_classes=7), path).eval()
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_model_compiles_without_graph_breaks(name: str) -> None:
    model = create_model(name).eval()
    x = small_input(name, 1)
    torch.compiler.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


def test_every_family_and_configuration_has_a_representative() -> None:
    groups = {builder_configuration(n) for n in NAMES}
    assert {builder_configuration(n) for n in REPRESENTATIVES} == groups
    # a representative too large for every check is there because it is its group's smallest member
    for name in REPRESENTATIVES:
        if model_info(name).num_params >= SMALL_MODEL_PARAMS:
            group = [n for n in NAMES if builder_configuration(n) == builder_configuration(name)]
            assert model_info(name).num_params == min(model_info(n).num_params for n in group), name
    # vgg's batch-norm variant runs the builder's other branch (a norm in every conv block): both are checked
    assert {"vgg11", "vgg11_bn", "regnet_y_400mf", "vit_b_16"} <= set(REPRESENTATIVES)
    assert not {"vgg13", "vgg13_bn", "regnet_y_128gf", "vit_h_14"} & set(REPRESENTATIVES)


def test_model_interface() -> None:
    model = create_model("resnet18", num_classes=10, in_channels=1)
    assert model.num_classes == 10
    assert model.num_features == 512
    x = torch.randn(2, 1, 64, 64)
    feats = model.forward_features(x)
    assert feats.shape == (2, 512, 2, 2)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 512)
    model.reset_classifier(0)
    assert model(x).shape == (2, 512)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)


@pytest.mark.parametrize(
    ("name", "millions"),
    [("resnet20", 0.27), ("resnet32", 0.46), ("resnet44", 0.66), ("resnet56", 0.85), ("resnet110", 1.7)],
)
def test_cifar_resnet_parameter_counts_match_the_paper(name: str, millions: float) -> None:
    # He et al. 2016, table 6, rounds to two significant figures
    count = model_info(name).num_params / 1e6
    assert float(f"{count:.2g}") == millions


def test_registry_rules() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"Unknown model 'resnet19'\. Did you mean 'resnet18'.*blockzoo\.list_models\(\) lists them all",
    ):
        create_model("resnet19")
    with pytest.raises(
        TypeError,
        match=r"model 'resnet18' does not take 'drop_rate'\. Did you mean 'drop_path_rate'\? It accepts: 'num_classes', 'in_channels'.*Received: drop_rate=0\.1",
    ):
        create_model("resnet18", drop_rate=0.1)
    with pytest.raises(ValueError, match=r"model named 'resnet18' is already registered"):
        blockzoo.register_model("resnet18", family="x")(lambda: None)
    assert list_models("vgg1?_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert list_models("resnet*", exclude=["resnet1*", "resnet2*", "resnet3*"]) == ["resnet44", "resnet50", "resnet56"]
    info = model_info("mobilenet_v2")
    assert (info.family, info.input_size) == ("mobilenet", (3, 224, 224))
    assert info.paper.startswith("Sandler et al. 2018")


def _builder(*, num_classes: int = 10, in_channels: int = 3, scale: float = 1.0) -> torch.nn.Module:
    return torch.nn.Linear(in_channels, num_classes)


@pytest.mark.parametrize(
    ("value", "error"),
    [(75, TypeError), ((75,), TypeError), ((75, 75, 3), TypeError), ("ab", TypeError), ((-1, 0), ValueError),
     ((7.5, 7.5), ValueError), ((True, 8), ValueError)],
)  # fmt: skip
def test_register_model_refuses_a_min_input_size_that_is_not_two_positive_ints(value: object, error: type) -> None:
    with pytest.raises(
        error, match=r"min_input_size must be \(H, W\), two positive ints, or None\. Received: min_input_size="
    ):
        blockzoo.register_model("never_registered", family="x", min_input_size=value)(_builder)  # type: ignore[arg-type]
    assert "never_registered" not in list_models()


def test_register_model_refuses_pretrained_options_the_builder_does_not_take() -> None:
    with pytest.raises(
        TypeError, match=r"pretrained_options of model 'never_registered' does not take 'scael'\. Did you mean 'scale'"
    ):
        blockzoo.register_model("never_registered", family="x", pretrained_options={"scael": 2.0})(_builder)
    assert "never_registered" not in list_models()


def test_residual_options() -> None:
    model = create_model("resnet20", drop_path_rate=0.2, zero_init_last=True)
    rates = [m.drop_path.p for m in model.modules() if isinstance(m, blockzoo.BasicBlock)]
    assert rates[0] == 0.0
    assert math.isclose(rates[-1], 0.2)
    assert all(
        not m.branch[-1].norm.weight.detach().any() for m in model.modules() if isinstance(m, blockzoo.BasicBlock)
    )


def test_layer_decay_uses_the_stages() -> None:
    model = create_model("resnet18")
    depths = model.param_depths()
    assert depths["features.stem.conv.conv.weight"] == 0
    assert depths["features.stage4.1.branch.1.conv.weight"] == 4
    assert depths["head.fc.weight"] == 5
    opt = blockzoo.create_optimizer(model, "adamw", lr=1.0, layer_decay=0.5)
    lrs = {n: g["lr"] for g in opt.param_groups for n in g["param_names"]}
    assert lrs["head.fc.weight"] == 1.0
    assert lrs["features.stem.conv.conv.weight"] == 0.5**5


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_layer_decay_depths_run_from_the_input_to_the_head_without_gaps(name: str) -> None:
    depths = create_model(name, device="meta").param_depths()
    levels = sorted(set(depths.values()))
    assert levels == list(range(len(levels)))
    assert all(d == levels[-1] for n, d in depths.items() if n.startswith("head."))


def test_layer_decay_counts_only_the_layers_with_parameters_of_a_flat_feature_list() -> None:
    model = create_model("vgg11", device="meta")  # 8 conv units among the pools, as torchvision's "A" configuration
    convs = [n for n, m in model.features.named_children() if isinstance(m, blockzoo.ConvNormAct)]
    assert len(convs) == 8
    assert len(model.features) > 8
    depths = model.param_depths()
    assert [depths[f"features.{n}.conv.weight"] for n in convs] == list(range(8))
    assert depths["head.fc.weight"] == 8


# ----------------------------------------------------------------------------- devices

#: Small models of each kind of block (plain conv stages, CIFAR and ImageNet residual blocks, inverted residuals).
DEVICE_MODELS = ["simple_cnn", "resnet20", "resnet18", "mobilenet_v2"]


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", DEVICE_MODELS)
def test_model_forward_and_backward_on_cuda_match_cpu(name: str) -> None:
    """The same weights give the same outputs and gradients on CUDA as on the CPU.

    In float64, where no TF32 or reduced-precision kernel blurs the comparison, and in eval mode, so that
    dropout draws from neither device's generator (batch norms still pass gradients to their parameters).
    """
    torch.manual_seed(0)
    cpu = create_model(name, num_classes=7, dtype=torch.float64).eval()
    gpu = copy.deepcopy(cpu).cuda()
    x = small_input(name, 2).double()
    out_cpu, out_gpu = cpu(x), gpu(x.cuda())
    assert out_gpu.device.type == "cuda"
    torch.testing.assert_close(out_gpu.cpu(), out_cpu)
    out_cpu.square().mean().backward()
    out_gpu.square().mean().backward()
    for (k, a), b in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        assert b.grad is not None, f"{k} got no gradient on CUDA"
        torch.testing.assert_close(b.grad.cpu(), a.grad, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", DEVICE_MODELS)
def test_model_runs_and_trains_under_bf16_autocast_on_cuda(name: str) -> None:
    device = "cuda"
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, device=device).eval()
    x = small_input(name, 4).to(device)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16
    assert low.device.type == device
    # bfloat16 keeps 8 bits of mantissa: the logits keep their direction (above 0.998 under CPU autocast).
    assert torch.nn.functional.cosine_similarity(low.float().flatten(), ref.flatten(), dim=0) > 0.99
    model.train()
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), torch.arange(4, device=device))
    loss.backward()
    for k, p in model.named_parameters():
        assert p.grad is not None, f"{k} got no gradient"
        assert p.grad.dtype == torch.float32, k  # autocast leaves the parameters, and so their gradients, in float32
        assert torch.isfinite(p.grad).all(), k
