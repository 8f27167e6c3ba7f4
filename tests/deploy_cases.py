"""Registered models built fast for the deployment tests (fusion, channels_last, export).

``create_model`` initialises every weight with blockzoo's activation-aware
initializers and records them, seconds for a VGG; these tests need only
weights of the right scale. Models are built on the meta device, given CPU
storage and filled from a seeded generator: the kernels with He-scaled
uniform values, and the batch norms with statistics and affine parameters
away from their defaults (mean 0, variance 1, scale 1, shift 0), where
folding would change almost nothing. The last norm scale of each residual
branch is then scaled down (see :func:`fill_`), as ``zero_init_last_`` or
training would leave it: with full-size branches the deepest networks amplify
rounding a hundredfold per stage, and no tolerance tells a right fold or
export from a wrong one.
"""

from __future__ import annotations

import torch
from torch import nn

import blockzoo
from support import fit_side, representative_models, scale_branch_ends_

#: What the last layer of each residual branch keeps of its filled values.
BRANCH_SCALE = 0.2

#: The representative models (see ``support.representative_models``) whose features are convolutional maps
#: ``[N, C, H, W]`` (a ViT's are tokens, a Swin's channels-last maps ``[N, H, W, C]``).
CNNS = [name for name in representative_models() if blockzoo.model_info(name).family not in ("mlp", "vit", "swin")]


def build(name: str, *, dtype: torch.dtype = torch.float32, **kwargs: object) -> nn.Module:
    """``create_model(name)`` in eval mode with cheap seeded weights and non-trivial batch-norm statistics."""
    model = blockzoo.create_model(name, device="meta", dtype=dtype, **kwargs).to_empty(device="cpu")
    fill_(model)
    return model.eval()


@torch.no_grad()
def fill_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded He-scaled kernels and random batch-norm statistics, in place; residual branches end scaled down.

    The layer that ends each residual branch keeps :data:`BRANCH_SCALE` of its
    filled values (``support.scale_branch_ends_``).
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            if module.affine:
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.uniform_(-0.2, 0.2, generator=gen)
            if module.track_running_stats:
                module.running_mean.uniform_(-0.2, 0.2, generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
                module.num_batches_tracked.fill_(1)
        else:
            for name, p in module.named_parameters(recurse=False):
                if p.dim() > 1:
                    bound = (6.0 / p[0].numel()) ** 0.5  # He uniform over the fan-in
                    p.uniform_(-bound, bound, generator=gen)
                elif name == "bias":
                    p.uniform_(-0.1, 0.1, generator=gen)
                else:
                    p.fill_(0.25)  # PReLU slopes and other vectors
    scale_branch_ends_(model, BRANCH_SCALE)
    return model


def small_input(name: str, batch: int = 2, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An input the model accepts: its own size for the small families, 32x32 for the ImageNet ones."""
    c, h, _ = blockzoo.model_info(name).input_size
    side = fit_side(name, 32) if h >= 224 else h  # alexnet and inception_v3 need more: their min_input_size
    return torch.randn(batch, c, side, side, dtype=dtype)
