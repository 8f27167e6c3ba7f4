"""MultiHeadSelfAttention, TransformerBlock, PatchEmbed, ClassToken and PositionEmbedding."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import blockzoo
from blockzoo import (
    ClassToken,
    InputError,
    MultiHeadSelfAttention,
    PatchEmbed,
    PositionEmbedding,
    Role,
    TransformerBlock,
)


@settings(max_examples=10, deadline=None)
@given(heads=st.integers(1, 4), head_dim=st.integers(1, 4), length=st.integers(1, 7), bias=st.booleans())
def test_attention_equals_torch_multihead_attention_with_the_same_weights(
    heads: int, head_dim: int, length: int, bias: bool
) -> None:
    dim = heads * head_dim
    ours = MultiHeadSelfAttention(dim, heads, qkv_bias=bias, dtype=torch.float64).eval()
    theirs = nn.MultiheadAttention(dim, heads, bias=bias, batch_first=True, dtype=torch.float64).eval()
    if not bias:  # torch's out_proj keeps its bias whatever `bias` says about the input projection
        theirs.out_proj.bias = nn.Parameter(torch.randn(dim, dtype=torch.float64))
    with torch.no_grad():
        ours.qkv.weight.copy_(theirs.in_proj_weight)
        if bias:
            ours.qkv.bias.copy_(torch.randn(3 * dim))
            theirs.in_proj_bias.copy_(ours.qkv.bias)
        ours.proj.weight.copy_(theirs.out_proj.weight)
        ours.proj.bias.copy_(theirs.out_proj.bias)
    x = torch.randn(3, length, dim, dtype=torch.float64)
    with torch.no_grad():
        expected, _ = theirs(x, x, x, need_weights=False)
        torch.testing.assert_close(ours(x), expected)


def test_attention_runs_torchs_scaled_dot_product_attention() -> None:
    attn = MultiHeadSelfAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof, torch.no_grad():
        attn(x)
    ops = {event.key for event in prof.key_averages()}
    assert "aten::scaled_dot_product_attention" in ops
    # no attention written out by hand
    assert "aten::softmax" not in ops
    assert "aten::_softmax" not in ops


def test_attention_drops_weights_only_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args: torch.Tensor, **kwargs: float) -> torch.Tensor:
        seen.append(kwargs["dropout_p"])
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    attn = MultiHeadSelfAttention(8, 2, attn_drop_rate=0.25)
    x = torch.randn(1, 3, 8)
    attn.train()(x)
    attn.eval()(x)
    assert seen == [0.25, 0.0]


def test_attention_checks_its_input_and_arguments() -> None:
    with pytest.raises(InputError, match=r"MultiHeadSelfAttention expected input of shape \[N, L, 8\].*\[2, 8, 3, 3\]"):
        MultiHeadSelfAttention(8, 2)(torch.randn(2, 8, 3, 3))
    with pytest.raises(InputError, match=r"looks like a map \[N, C, H, W\].*PatchEmbed"):
        MultiHeadSelfAttention(8, 2)(torch.randn(2, 8, 3, 3))
    with pytest.raises(ValueError, match=r"num_heads must divide dim \(10\)\. Received: num_heads=3"):
        MultiHeadSelfAttention(10, 3)
    with pytest.raises(ValueError, match=r"attn_drop_rate must be .*Received: attn_drop_rate=1\.0"):
        MultiHeadSelfAttention(8, 2, attn_drop_rate=1.0)
    with pytest.raises(ValueError, match=r"proj_drop_rate must be .*Received: proj_drop_rate=1\.0"):
        MultiHeadSelfAttention(8, 2, proj_drop_rate=1.0)
    with pytest.raises(ValueError, match=r"attn_drop_rate must be .*Received: attn_drop_rate=-0\.1"):
        blockzoo.TransformerBlock(8, 2, attn_drop_rate=-0.1)


def test_transformer_block_is_pre_norm_attention_then_mlp() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(12, 3, mlp_ratio=2.0, layer_scale_init=0.5).eval()
    x = torch.randn(2, 5, 12)
    attn, mlp = block.attention.branch, block.feedforward.branch
    with torch.no_grad():
        y = x + 0.5 * attn.attn(F.layer_norm(x, (12,), attn.norm.weight, attn.norm.bias, 1e-6))
        hidden = F.gelu(
            F.linear(F.layer_norm(y, (12,), mlp.norm.weight, mlp.norm.bias, 1e-6), *_wb(mlp.mlp.layers[0].fc))
        )
        expected = y + 0.5 * F.linear(hidden, *_wb(mlp.mlp.out))
        torch.testing.assert_close(block(x), expected)


def _wb(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    return layer.weight, layer.bias


def test_transformer_block_holds_no_more_memory_than_torchvisions_encoder_block() -> None:
    from benchmarks.bench_models import peak_bytes

    vision_transformer = pytest.importorskip("torchvision.models.vision_transformer")
    ours = TransformerBlock(16, 4).eval()
    # torchvision's block runs torch's fused attention (nn.MultiheadAttention's fast path) without autograd
    theirs = vision_transformer.EncoderBlock(4, 16, 64, 0.0, 0.0).eval()
    x = torch.randn(2, 6, 16)
    # Alive at the MLP's activation: the attention half's output, the norm's, and the activation's input and
    # output (4 tokens wide each).
    assert peak_bytes(ours, x) == peak_bytes(theirs, x) == 10 * x.nbytes


@pytest.mark.parametrize("layer_scale_init", [None, 1e-5])
def test_transformer_block_residual_tools(layer_scale_init: float | None) -> None:
    model = nn.Sequential(*(TransformerBlock(8, 2, layer_scale_init=layer_scale_init) for _ in range(2)))
    handle = blockzoo.regularization.attach_stochastic_depth(model, 0.3)
    assert handle.targets == ["0.attention", "0.feedforward", "1.attention", "1.feedforward"]
    assert model[1].feedforward.drop_path.p == pytest.approx(0.3)
    handle.remove()
    blockzoo.zero_init_last_(model)
    x = torch.randn(2, 4, 8)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), x)
    roles = blockzoo.param_roles(model)
    assert roles["0.attention.branch.attn.qkv.weight"] is Role.WEIGHT
    if layer_scale_init is not None:
        assert roles["0.feedforward.branch.layer_scale.gamma"] is Role.SCALE


def test_transformer_block_checks_its_arguments() -> None:
    with pytest.raises(
        ValueError,
        match=r"mlp_ratio must give at least one hidden feature \(dim \* mlp_ratio >= 0\.5, dim=8\)\. Received: mlp_ratio=0\.01",
    ):
        TransformerBlock(8, 2, mlp_ratio=0.01)
    with pytest.raises(ValueError, match=r"drop_rate must be .*Received: drop_rate=-0\.1"):
        TransformerBlock(8, 2, drop_rate=-0.1)
    with pytest.raises(InputError, match=r"TransformerBlock expected input of shape \[N, L, 8\], received \[2, 3, 4\]"):
        TransformerBlock(8, 2)(torch.randn(2, 3, 4))


def test_patch_embed_makes_one_token_per_patch_row_by_row() -> None:
    embed = PatchEmbed(1, 4, patch_size=2)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    tokens = embed(x)
    assert tokens.shape == (1, 4, 4)
    # token 1 is the top-right patch: rows 0-1, columns 2-3
    patch = x[:, :, 0:2, 2:4]
    expected = (embed.proj.weight * patch).sum((1, 2, 3)) + embed.proj.bias
    torch.testing.assert_close(tokens[0, 1], expected)
    assert embed.output_shape((3, 1, 9, 7)) == (3, 12, 4)


def test_patch_embed_checks_its_input() -> None:
    with pytest.raises(InputError, match=r"each side must be at least patch_size=16; use a larger image"):
        PatchEmbed(3, 8)(torch.randn(1, 3, 8, 32))
    with pytest.raises(InputError, match=r"PatchEmbed expected input of shape \[N, 3, H, W\]"):
        PatchEmbed(3, 8).output_shape((1, 32, 32, 3))


def test_class_token_goes_first_and_is_an_embedding() -> None:
    cls = ClassToken(4)
    with torch.no_grad():
        cls.token.fill_(7.0)
    x = torch.randn(2, 3, 4)
    out = cls(x)
    assert torch.equal(out[:, 1:], x)
    assert (out[:, 0] == 7.0).all()
    opt = blockzoo.create_optimizer(cls, "sgd", lr=0.1, weight_decay=0.1)
    assert opt.param_groups[0]["weight_decay"] == 0.0


def test_position_embedding_adds_and_resizes_its_grid() -> None:
    pos = PositionEmbedding(1 + 4, 2, num_prefix_tokens=1)
    assert pos.param_roles() == {"weight": Role.EMBEDDING}
    x = torch.randn(3, 5, 2)
    torch.testing.assert_close(pos(x), x + pos.weight)
    with torch.no_grad():
        pos.weight.copy_(torch.tensor([[9.0, 9.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]).unsqueeze(0))
    # a constant grid stays constant at any size; the class token's embedding is kept as it is
    bigger = pos.embedding(1 + 9)
    torch.testing.assert_close(bigger, torch.tensor([[9.0, 9.0]] + [[1.0, 1.0]] * 9).unsqueeze(0))


def test_position_embedding_checks_its_arguments_and_input() -> None:
    with pytest.raises(ValueError, match=r"must be a positive square .*Received: num_tokens=6, num_prefix_tokens=1"):
        PositionEmbedding(6, 8, num_prefix_tokens=1)
    with pytest.raises(InputError, match=r"the 7 tokens minus 1 prefix tokens must form a square grid"):
        PositionEmbedding(5, 8, num_prefix_tokens=1)(torch.randn(1, 7, 8))


def test_embeddings_record_their_initializer() -> None:
    # The initializers the ViT paper and torchvision use: a zero class token, N(0, 0.02) positions.
    model = nn.Sequential(ClassToken(8), PositionEmbedding(5, 8, num_prefix_tokens=1))
    rows = {row.name: row for row in blockzoo.init.init_report(model).rows}
    assert (rows["0.token"].initializer, rows["0.token"].expected_std) == ("zeros", 0.0)
    assert (rows["1.weight"].initializer, rows["1.weight"].expected_std) == ("normal(std=0.02)", 0.02)
    assert {rows[n].status for n in rows} == {"initialized"}
    with torch.no_grad():
        model[1].weight.add_(1.0)
    assert blockzoo.init.init_report(model).rows[1].status == "modified"


def test_transformer_block_records_every_initializer() -> None:
    rows = blockzoo.init.init_report(TransformerBlock(8, 2, layer_scale_init=0.1)).rows
    assert [row.name for row in rows if row.initializer in ("?", "-")] == []
    scales = [row for row in rows if row.name.endswith("layer_scale.gamma")]
    assert [(row.initializer, row.status) for row in scales] == [("constant(val=0.1)", "initialized")] * 2
