"""WindowAttention, SwinBlock and PatchMerging: torchvision's Swin v1 parts, on channels-last maps."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import blockzoo
from blockzoo import InputError, PatchMerging, Role, SwinBlock, WindowAttention

swin = pytest.importorskip("torchvision.models.swin_transformer")


def _load_from(ours: nn.Module, theirs: nn.Module) -> None:
    """Random values in ``theirs``, copied into ``ours`` in state_dict order (torchvision's index buffer skipped)."""
    state = {k: v for k, v in theirs.state_dict().items() if not k.endswith("relative_position_index")}
    with torch.no_grad():
        for value in state.values():
            value.normal_(0.0, 0.5)
    ours.load_state_dict(dict(zip(ours.state_dict(), state.values(), strict=True)))


@settings(max_examples=12, deadline=None)
@given(
    heads=st.integers(1, 3),
    head_dim=st.integers(1, 3),
    window=st.integers(2, 5),
    shift_half=st.booleans(),
    height=st.integers(1, 12),
    width=st.integers(1, 12),
)
def test_swin_block_equals_torchvisions_with_the_same_weights(
    heads: int, head_dim: int, window: int, shift_half: bool, height: int, width: int
) -> None:
    # Maps that need padding, that hold one window along a side (no shift there) or several (shifted, masked).
    dim, shift = heads * head_dim, window // 2 if shift_half else 0
    theirs = swin.SwinTransformerBlock(dim, heads, [window, window], [shift, shift]).double().eval()
    ours = SwinBlock(dim, heads, window_size=window, shift_size=shift, dtype=torch.float64).eval()
    _load_from(ours, theirs)
    x = torch.randn(2, height, width, dim, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_window_attention_equals_torchvisions_at_swins_window_on_a_padded_shifted_map() -> None:
    theirs = swin.ShiftedWindowAttention(12, [7, 7], [3, 3], 3).double().eval()
    ours = WindowAttention(12, 3, window_size=7, shift_size=3, dtype=torch.float64).eval()
    _load_from(ours, theirs)
    x = torch.randn(2, 16, 23, 12, dtype=torch.float64)  # padded to 21 x 28: 3 x 4 windows
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
    # torchvision keeps the table's rows for each pair as a buffer; here they are computed, and the same
    with torch.no_grad():
        ours.relative_position_bias_table.copy_(torch.arange(13 * 13.0).unsqueeze(1).expand(-1, 3))
    rows = ours.relative_position_bias()
    assert rows.shape == (3, 49, 49)
    assert torch.equal(rows[2].long(), _offset_rows(7))
    assert torch.equal(rows[0].long().flatten(), theirs.relative_position_index)


def _offset_rows(window: int) -> torch.Tensor:
    """The table row of every pair of a window's positions, by brute force: ``(dy + w - 1) * (2w - 1) + dx + w - 1``."""
    pos = [(y, x) for y in range(window) for x in range(window)]
    side = 2 * window - 1
    return torch.tensor([[(a[0] - b[0] + window - 1) * side + a[1] - b[1] + window - 1 for b in pos] for a in pos])


def test_shifted_windows_keep_distant_regions_apart() -> None:
    # One 4 x 4 map, windows of 2, shifted by 1: the roll brings the last row next to the first. A change at the
    # top-left corner (region 0) must not reach the bottom-right corner, which the roll puts in the same window.
    attn = WindowAttention(4, 1, window_size=2, shift_size=1, dtype=torch.float64).eval()
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64)
    changed = x.clone()
    changed[0, 0, 0] += 10.0
    with torch.no_grad():
        delta = (attn(changed) - attn(x)).abs().sum(-1)[0]
    assert delta[3, 3] < 1e-30  # masked at -100: e^-100 of the change, below float64's resolution
    assert delta[0, 0] > 0
    unshifted = WindowAttention(4, 1, window_size=2, dtype=torch.float64).eval()
    unshifted.load_state_dict(attn.state_dict())
    with torch.no_grad():
        delta = (unshifted(changed) - unshifted(x)).abs().sum(-1)[0]
    assert (delta[:2, :2] > 0).all()  # its own window
    assert (delta[2:] == 0).all()  # nothing else
    assert (delta[:, 2:] == 0).all()


def test_window_attention_runs_torchs_scaled_dot_product_attention() -> None:
    for shift in (0, 2):
        attn = WindowAttention(8, 2, window_size=4, shift_size=shift).eval()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof, torch.no_grad():
            attn(torch.randn(2, 8, 8, 8))
        ops = {event.key for event in prof.key_averages()}
        assert "aten::scaled_dot_product_attention" in ops
        assert "aten::softmax" not in ops
        assert "aten::_softmax" not in ops


def test_window_attention_drops_weights_only_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args: torch.Tensor, **kwargs: float) -> torch.Tensor:
        seen.append(kwargs["dropout_p"])
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    attn = WindowAttention(8, 2, window_size=2, attn_drop_rate=0.25)
    x = torch.randn(1, 4, 4, 8)
    attn.train()(x)
    attn.eval()(x)
    assert seen == [0.25, 0.0]


def test_patch_merging_equals_torchvisions_and_pads_odd_sides() -> None:
    theirs = swin.PatchMerging(6).double()
    ours = PatchMerging(6, dtype=torch.float64)
    with torch.no_grad():
        for value in theirs.parameters():
            value.normal_()
    state = theirs.state_dict()  # torchvision registers the reduction before the norm
    ours.load_state_dict({"norm.weight": state["norm.weight"], "norm.bias": state["norm.bias"], **state})
    x = torch.randn(2, 7, 4, 6, dtype=torch.float64)
    with torch.no_grad():
        out = ours(x)
        torch.testing.assert_close(out, theirs(x))
    assert out.shape == ours.output_shape(x.shape) == (2, 4, 2, 12)
    # each output position reads its 2x2 patch: top-left, bottom-left, top-right, bottom-right
    plain = PatchMerging(1, norm_layer=None, dtype=torch.float64)
    with torch.no_grad():
        plain.reduction.weight.copy_(torch.tensor([[1.0, 10.0, 100.0, 1000.0]] * 2))
        grid = torch.arange(6.0, dtype=torch.float64).view(1, 2, 3, 1)  # [[0, 1, 2], [3, 4, 5]]
        merged = plain(grid)[0, :, :, 0]
    # [0, 1; 3, 4] -> 0 + 30 + 100 + 4000; the padded column: [2, 0; 5, 0] -> 2 + 50
    assert merged.tolist() == [[4130.0, 52.0]]


@pytest.mark.parametrize("layer_scale_init", [None, 1e-5])
def test_swin_block_residual_tools(layer_scale_init: float | None) -> None:
    model = nn.Sequential(
        *(SwinBlock(8, 2, window_size=2, shift_size=s, layer_scale_init=layer_scale_init) for s in (0, 1))
    )
    handle = blockzoo.regularization.attach_stochastic_depth(model, 0.3)
    assert handle.targets == ["0.attention", "0.feedforward", "1.attention", "1.feedforward"]
    assert model[1].feedforward.drop_path.p == pytest.approx(0.3)
    handle.remove()
    blockzoo.zero_init_last_(model)
    x = torch.randn(2, 5, 3, 8)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), x)
    roles = blockzoo.param_roles(model)
    assert roles["0.attention.branch.attn.relative_position_bias_table"] is Role.EMBEDDING
    assert roles["0.attention.branch.attn.qkv.weight"] is Role.WEIGHT
    if layer_scale_init is not None:
        assert roles["1.feedforward.branch.layer_scale.gamma"] is Role.SCALE


def test_relative_position_bias_table_has_no_weight_decay_and_records_its_initializer() -> None:
    attn = WindowAttention(8, 2, window_size=3)
    opt = blockzoo.create_optimizer(attn, "adamw", lr=0.1, weight_decay=0.05)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decay[id(attn.relative_position_bias_table)] == 0.0
    assert decay[id(attn.qkv.weight)] == 0.05
    rows = {row.name: row for row in blockzoo.init.init_report(SwinBlock(8, 2, window_size=3)).rows}
    table = rows["attention.branch.attn.relative_position_bias_table"]
    assert (table.initializer, table.expected_std, table.status) == ("trunc_normal(std=0.02)", 0.02, "initialized")
    assert [name for name, row in rows.items() if row.initializer in ("?", "-")] == []


def test_swin_blocks_check_their_arguments() -> None:
    with pytest.raises(ValueError, match=r"num_heads must divide dim \(10\)\. Received: num_heads=3"):
        WindowAttention(10, 3)
    with pytest.raises(ValueError, match=r"shift_size must be smaller than window_size \(4\).*Received: shift_size=4"):
        WindowAttention(8, 2, window_size=4, shift_size=4)
    with pytest.raises(ValueError, match=r"shift_size must be .*Received: shift_size=-1"):
        SwinBlock(8, 2, shift_size=-1)
    with pytest.raises(ValueError, match=r"window_size must be .*Received: window_size=0"):
        SwinBlock(8, 2, window_size=0)
    with pytest.raises(ValueError, match=r"attn_drop_rate must be .*Received: attn_drop_rate=1\.0"):
        WindowAttention(8, 2, attn_drop_rate=1.0)
    with pytest.raises(ValueError, match=r"proj_drop_rate must be .*Received: proj_drop_rate=1\.0"):
        WindowAttention(8, 2, proj_drop_rate=1.0)
    with pytest.raises(ValueError, match=r"mlp_ratio must give at least one hidden feature.*Received: mlp_ratio=0\.01"):
        SwinBlock(8, 2, mlp_ratio=0.01)
    with pytest.raises(ValueError, match=r"out_dim must be .*Received: out_dim=0"):
        PatchMerging(8, out_dim=0)


def test_swin_blocks_check_their_input_and_point_at_the_layout() -> None:
    with pytest.raises(InputError, match=r"SwinBlock expected input of shape \[N, H, W, 8\], received \[2, 8, 5, 5\]"):
        SwinBlock(8, 2)(torch.randn(2, 8, 5, 5))
    with pytest.raises(InputError, match=r"looks channels-first \[N, C, H, W\].*x\.permute\(0, 2, 3, 1\)"):
        WindowAttention(8, 2)(torch.randn(2, 8, 5, 5))
    with pytest.raises(InputError, match=r"looks like tokens \[N, L, C\].*x\.view\(N, H, W, C\)"):
        PatchMerging(8)(torch.randn(2, 25, 8))
    with pytest.raises(
        InputError, match=r"PatchMerging expected input of shape \[N, H, W, 8\], received \[2, 4, 4, 6\]"
    ):
        PatchMerging(8).output_shape((2, 4, 4, 6))
    with pytest.raises(InputError, match=r"convert the tensor with x\.float\(\)"):
        SwinBlock(8, 2)(torch.zeros(1, 4, 4, 8, dtype=torch.uint8))
