"""From images to tokens: patch embedding, the class token and position embeddings (Dosovitskiy et al. 2021)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blockzoo._checks import check_int, check_positive_int
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import ChannelsFirstBlock, TokenBlock
from blockzoo.blocks._layout import tokens_error
from blockzoo.errors import InputError
from blockzoo.init._records import set_record
from blockzoo.roles import Role

__all__ = ["ClassToken", "PatchEmbed", "PositionEmbedding"]


class PatchEmbed(ChannelsFirstBlock):
    """Cut an image into ``patch_size`` x ``patch_size`` patches and project each to a token.

    A conv whose window and stride are the patch size, then the map's
    positions as a sequence, row by row (torchvision's ``conv_proj``). A side
    that the patch size does not divide loses its last pixels, as a strided
    conv does.

    Args:
        in_channels: Channels of the image.
        embed_dim: Width of each token.
        patch_size: Side of each patch.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, H, W]``.
        - Output: ``[N, (H // patch_size) * (W // patch_size), embed_dim]``.

    Example:
        >>> import torch
        >>> from blockzoo import PatchEmbed
        >>> embed = PatchEmbed(3, 192, patch_size=16)
        >>> embed.proj
        Conv2d(3, 192, kernel_size=(16, 16), stride=(16, 16))
        >>> embed(torch.randn(2, 3, 224, 224)).shape
        torch.Size([2, 196, 192])
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        *,
        patch_size: int = 16,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.embed_dim = check_positive_int("embed_dim", embed_dim)
        self.patch_size = check_positive_int("patch_size", patch_size)
        self.spatial_dims = 2
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size, device=device, dtype=dtype)
        self.reset_parameters()

    def _too_small(self, shape: Sequence[int]) -> InputError:
        return self._layout_error(
            shape, None, hint=f"each side must be at least patch_size={self.patch_size}; use a larger image."
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if x.shape[2] < self.patch_size or x.shape[3] < self.patch_size:
            raise self._too_small(x.shape)
        # [N, embed_dim, h, w] -> [N, h * w, embed_dim]
        return self.proj(x).flatten(2).transpose(1, 2)  # type: ignore[no-any-return]

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        shape = self._check_shape(input_shape)
        if min(shape[2:]) < self.patch_size:
            raise self._too_small(shape)
        p = self.patch_size
        return torch.Size((shape[0], (shape[2] // p) * (shape[3] // p), self.embed_dim))

    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}"


class ClassToken(TokenBlock):
    """Put a learned token in front of the sequence; the classifier reads it at the end (the ViT's ``[class]``).

    The token (``token``, shape ``[1, 1, dim]``, zeros at first as in
    torchvision) has the role ``embedding``, so it gets no weight decay by
    default.

    Args:
        dim: Width of each token.
        device: Where the parameter is created.
        dtype: Its dtype.

    Shape:
        - Input: ``[N, L, dim]``.
        - Output: ``[N, L + 1, dim]``.

    Example:
        >>> import torch
        >>> from blockzoo import ClassToken
        >>> cls = ClassToken(64)
        >>> cls(torch.randn(2, 196, 64)).shape, cls.param_roles()
        (torch.Size([2, 197, 64]), {'token': <Role.EMBEDDING: 'embedding'>})
    """

    def __init__(self, dim: int, *, device: DeviceLike = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.token = nn.Parameter(torch.empty(1, 1, dim, device=device, dtype=dtype))
        self.reset_parameters()

    def own_param_roles(self) -> Mapping[str, Role]:
        return {"token": Role.EMBEDDING}

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.token)
        set_record(self, "token", "zeros", 0.0)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, length, dim = super().output_shape(input_shape)
        return torch.Size((n, length + 1, dim))

    def extra_repr(self) -> str:
        return str(self.dim)


class PositionEmbedding(TokenBlock):
    """Add a learned embedding to each position of a sequence of patch tokens (after any class token).

    ``weight`` (shape ``[1, num_tokens, dim]``, role ``embedding``) is torchvision's
    ``pos_embedding``. Built for a square grid of ``num_tokens - num_prefix_tokens``
    patches; a sequence of another square grid (a smaller or larger image)
    gets the grid part resized bicubically (as torchvision's
    ``interpolate_embeddings``, which fine-tuning at another resolution uses),
    and the prefix tokens' embeddings unchanged.

    Args:
        num_tokens: Length of the sequence it is built for, prefix included.
        dim: Width of each token.
        num_prefix_tokens: Tokens before the grid (1 for a class token).
        device: Where the parameter is created.
        dtype: Its dtype.

    Shape:
        - Input: ``[N, L, dim]``, where ``L - num_prefix_tokens`` is a square.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import PositionEmbedding
        >>> pos = PositionEmbedding(197, 64, num_prefix_tokens=1)
        >>> pos.weight.shape
        torch.Size([1, 197, 64])
        >>> pos(torch.randn(2, 197, 64)).shape, pos(torch.randn(2, 17, 64)).shape
        (torch.Size([2, 197, 64]), torch.Size([2, 17, 64]))
    """

    def __init__(
        self,
        num_tokens: int,
        dim: int,
        *,
        num_prefix_tokens: int = 0,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_tokens = check_positive_int("num_tokens", num_tokens)
        self.dim = check_positive_int("dim", dim)
        self.num_prefix_tokens = check_int("num_prefix_tokens", num_prefix_tokens, low=0)
        side = math.isqrt(num_tokens - num_prefix_tokens) if num_tokens >= num_prefix_tokens else 0
        if side < 1 or side * side != num_tokens - num_prefix_tokens:
            raise ValueError(
                f"num_tokens - num_prefix_tokens must be a positive square (a square grid of patches, such as "
                f"196 = 14 x 14). Received: num_tokens={num_tokens}, num_prefix_tokens={num_prefix_tokens}"
            )
        self.grid_size = side
        self.weight = nn.Parameter(torch.empty(1, num_tokens, dim, device=device, dtype=dtype))
        self.reset_parameters()

    def own_param_roles(self) -> Mapping[str, Role]:
        return {"weight": Role.EMBEDDING}

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.02)  # torchvision's and the paper's
        set_record(self, "weight", "normal(std=0.02)", 0.02)

    def _grid(self, length: int) -> int | None:
        """The side of the grid of a sequence of ``length`` tokens, or ``None`` when it is not square."""
        patches = length - self.num_prefix_tokens
        side = math.isqrt(patches) if patches > 0 else 0
        return side if side > 0 and side * side == patches else None

    def _check_length(self, shape: Sequence[int], dtype: torch.dtype | None) -> None:
        if self._grid(shape[1]) is None:
            raise tokens_error(
                type(self).__name__,
                shape,
                dtype,
                self.dim,
                f"the {shape[1]} tokens minus {self.num_prefix_tokens} prefix tokens must form a square grid "
                f"of patches (this embedding is for {self.grid_size} x {self.grid_size}); use a square image.",
            )

    def embedding(self, length: int) -> Tensor:
        """The embedding for a sequence of ``length`` tokens: ``weight``, resized when the grid differs.

        Example:
            >>> from blockzoo import PositionEmbedding
            >>> PositionEmbedding(5, 8, num_prefix_tokens=1).embedding(10).shape
            torch.Size([1, 10, 8])
        """
        side = self._grid(length)
        if length == self.num_tokens or side is None:
            return self.weight
        prefix, grid = self.weight[:, : self.num_prefix_tokens], self.weight[:, self.num_prefix_tokens :]
        grid = grid.reshape(1, self.grid_size, self.grid_size, self.dim).permute(0, 3, 1, 2)
        # bicubic in float32 at least: the kernel has no bfloat16 CPU version on every torch
        resized = F.interpolate(grid.float(), size=(side, side), mode="bicubic", align_corners=True).to(grid.dtype)
        return torch.cat([prefix, resized.permute(0, 2, 3, 1).reshape(1, side * side, self.dim)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if x.shape[1] != self.num_tokens:
            self._check_length(x.shape, x.dtype)
        return x + self.embedding(x.shape[1])

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        shape = super().output_shape(input_shape)
        self._check_length(shape, None)
        return shape

    def extra_repr(self) -> str:
        prefix = f", num_prefix_tokens={self.num_prefix_tokens}" if self.num_prefix_tokens else ""
        return f"{self.num_tokens}, {self.dim}{prefix}"
