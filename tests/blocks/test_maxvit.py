"""MaxViT's blocks: equal to torchvision's parts with the same weights, their laws, roles and argument checks."""

import functools
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import blockzoo
from blockzoo import InputError, MaxViTBlock, MaxViTMBConv, PartitionAttention, RelativePositionAttention, Role
from blockzoo.blocks._attention import relative_position_index

torchvision = pytest.importorskip("torchvision")
tv_maxvit = pytest.importorskip("torchvision.models.maxvit")


def copy_in_order_(ours: nn.Module, theirs: nn.Module, skip: str = "relative_position_index") -> None:
    """Copy ``theirs``' state_dict into ``ours`` by position (the layouts list the same tensors in the same order)."""
    mine = list(ours.state_dict())
    values = [v for k, v in theirs.state_dict().items() if not k.endswith(skip)]
    assert len(mine) == len(values)
    ours.load_state_dict(dict(zip(mine, values, strict=True)))


@torch.no_grad()
def randomise_(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
        for p in m.parameters(recurse=False):
            p.uniform_(-0.3, 0.3)
    return module


@settings(max_examples=10, deadline=None)
@given(size=st.integers(1, 5))
def test_relative_position_index_reads_one_row_per_offset(size: int) -> None:
    index = relative_position_index(size)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    dy = ys.flatten()[:, None] - ys.flatten()[None, :]
    dx = xs.flatten()[:, None] - xs.flatten()[None, :]
    # two pairs share a row exactly when they share the offset, and every row of the table is read
    offset = (dy + size - 1) * (2 * size - 1) + (dx + size - 1)
    assert torch.equal(index, offset)
    assert set(index.flatten().tolist()) == set(range((2 * size - 1) ** 2))


def test_relative_position_attention_equals_torchvisions_with_the_same_weights() -> None:
    torch.manual_seed(0)
    theirs = tv_maxvit.RelativePositionalMultiHeadAttention(16, 4, 9).eval()
    ours = RelativePositionAttention(16, head_dim=4, window_size=3, scale=16**-0.5).eval()
    randomise_(theirs)
    copy_in_order_(ours, theirs)
    x = torch.randn(2, 5, 9, 16)  # torchvision's [N, groups, tokens, dim]
    with torch.no_grad():
        torch.testing.assert_close(ours(x.reshape(10, 9, 16)).view(2, 5, 9, 16), theirs(x))


def test_relative_position_attention_runs_scaled_dot_product_attention_with_the_bias_as_mask() -> None:
    attn = RelativePositionAttention(16, head_dim=8, window_size=2).eval()
    x = torch.randn(3, 4, 16)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof, torch.no_grad():
        attn(x)
    assert "aten::scaled_dot_product_attention" in {event.key for event in prof.key_averages()}
    # the same as the attention written out, the bias added to each head's logits
    with torch.no_grad():
        q, k, v = attn.qkv(x).view(3, 4, 3, 2, 8).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) * 8**-0.5 + attn.relative_position_bias()
        expected = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(3, 4, 16))
        torch.testing.assert_close(attn(x), expected)


def test_the_bias_table_is_an_embedding_free_of_weight_decay() -> None:
    attn = RelativePositionAttention(8, head_dim=4, window_size=2)
    assert attn.param_roles()["relative_position_bias_table"] is Role.EMBEDDING
    assert "relative_position_index" not in attn.state_dict()  # made in the forward pass: meta builds keep it
    opt = blockzoo.create_optimizer(attn, "adamw", lr=0.1, weight_decay=0.05)
    decay = {n: g["weight_decay"] for g in opt.param_groups for n in g["param_names"]}
    assert decay["relative_position_bias_table"] == 0.0
    assert decay["qkv.weight"] == 0.05


@pytest.mark.parametrize("partition", ["window", "grid"])
def test_partition_attention_equals_torchvisions_layer(partition: str) -> None:
    torch.manual_seed(0)
    theirs = tv_maxvit.PartitionAttentionLayer(
        16, 4, 2, partition, (6, 6), 2, nn.GELU, nn.LayerNorm, 0.0, 0.0, 0.0
    ).eval()
    ours = PartitionAttention(16, partition=partition, partition_size=2, head_dim=4, mlp_ratio=2, attn_scale=0.25)
    randomise_(theirs)
    copy_in_order_(ours, theirs)
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs(x))


@pytest.mark.parametrize(
    ("partition", "first_group"),
    [("window", lambda x: x[..., :2, :2]), ("grid", lambda x: x[..., ::3, ::2])],  # a 6 x 4 map, partitions of 2
)
def test_window_partition_groups_neighbours_and_grid_partition_pixels_a_cell_apart(
    partition: str, first_group: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    block = PartitionAttention(4, partition=partition, partition_size=2, head_dim=4).eval()
    branch = block.attention.branch
    branch.norm = nn.Identity()
    with torch.no_grad():
        # queries and keys zero, no bias: uniform attention, so each token gets its group's mean of the values
        for p in branch.attn.parameters():
            p.zero_()
        branch.attn.qkv.weight[8:].copy_(torch.eye(4))
        branch.attn.proj.weight.copy_(torch.eye(4))
        for p in block.feedforward.parameters():  # the MLP half adds nothing
            p.zero_()
        x = torch.randn(1, 4, 6, 4)
        out = block(x)
    group = first_group(x)
    torch.testing.assert_close(first_group(out) - group, group.mean((-2, -1), keepdim=True).expand_as(group))


@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(8, 8, 1), (4, 8, 1), (4, 8, 2)])
def test_maxvit_mbconv_equals_torchvisions(c_in: int, c_out: int, stride: int) -> None:
    torch.manual_seed(0)
    norm = functools.partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)
    theirs = randomise_(tv_maxvit.MBConv(c_in, c_out, 4, 0.25, stride, nn.GELU, norm)).eval()
    ours = MaxViTMBConv(c_in, c_out, stride=stride).eval()
    mine = list(ours.state_dict())
    shortcut = [k for k in mine if k.startswith("shortcut.")]
    # torchvision registers the shortcut (proj) first
    order = shortcut + [k for k in mine if k not in shortcut]
    ours.load_state_dict(dict(zip(order, theirs.state_dict().values(), strict=True)))
    x = torch.randn(2, c_in, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_maxvit_block_starts_as_the_identity_after_zero_init_last() -> None:
    block = MaxViTBlock(8, 8, partition_size=2, head_dim=4)
    residuals = [m for m in block.modules() if isinstance(m, blockzoo.ResidualBlock)]
    assert len(residuals) == 5  # the MBConv and two halves of each partition attention
    blockzoo.zero_init_last_(block)
    x = torch.randn(2, 8, 4, 6)
    with torch.no_grad():
        torch.testing.assert_close(block.eval()(x), x)
    targets = blockzoo.regularization.attach_stochastic_depth(block, 0.2).targets
    assert len(targets) == 5


def test_maxvit_blocks_check_their_input_and_arguments() -> None:
    with pytest.raises(ValueError, match=r"head_dim must divide dim \(10\)\. Received: head_dim=4"):
        RelativePositionAttention(10, head_dim=4)
    with pytest.raises(InputError, match=r"windows of 2x2 = 4 tokens\. Received: input of shape \[1, 5, 8\]"):
        RelativePositionAttention(8, head_dim=4, window_size=2)(torch.randn(1, 5, 8))
    with pytest.raises(InputError, match=r"windows of 4 tokens\. Received: input_shape=\[1, 5, 8\]"):
        RelativePositionAttention(8, head_dim=4, window_size=2).output_shape((1, 5, 8))
    with pytest.raises(ValueError, match=r"partition must be one of 'window', 'grid'\. Received: partition='block'"):
        PartitionAttention(8, partition="block")
    with pytest.raises(InputError, match=r"multiples of partition_size=2"):
        PartitionAttention(8, partition_size=2, head_dim=4)(torch.randn(1, 8, 4, 5))
    with pytest.raises(InputError, match=r"multiples of partition_size=2"):
        PartitionAttention(8, partition_size=2, head_dim=4).output_shape((1, 8, 3, 4))
    with pytest.raises(ValueError, match=r"stride must be 1 or 2\. Received: stride=3"):
        MaxViTMBConv(4, 8, stride=3)
    with pytest.raises(ValueError, match=r"must leave at least one channel.*Received: expand_ratio=4.0, se_ratio=0.1"):
        MaxViTMBConv(4, 8, se_ratio=0.1)


def test_maxvit_t_keeps_torchvisions_stochastic_depth() -> None:
    ours = blockzoo.create_model("maxvit_t", device="meta")
    with torch.device("meta"):
        theirs = torchvision.models.maxvit_t()
    # torchvision gives each MaxViT layer one rate (its partition layers' StochasticDepth), 0 to 0.2 over 11 layers
    per_layer = [
        m.layers.grid_attention.stochastic_dropout.p for m in theirs.modules() if isinstance(m, tv_maxvit.MaxVitLayer)
    ]
    assert len(per_layer) == 11
    assert per_layer[-1] == pytest.approx(0.2)
    # ours: the same rate on each of a block's five residual blocks (its MBConv and two halves of each attention)
    rates = [m.p for m in ours.modules() if isinstance(m, blockzoo.DropPath)]
    torch.testing.assert_close(torch.tensor(rates), torch.tensor(per_layer).repeat_interleave(5), rtol=0, atol=1e-12)


def test_maxvit_t_names_attn_drop_rate_when_it_is_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"attn_drop_rate must be .*Received: attn_drop_rate=1\.5"):
        blockzoo.create_model("maxvit_t", attn_drop_rate=1.5, device="meta")
