"""SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers.

Xie, Wang, Yu, Anandkumar, Alvarez and Luo, NeurIPS 2021, arXiv:2105.15203; official code
https://github.com/NVlabs/SegFormer.

Mix Transformer (MiT) encoder, four stages at strides 4, 8, 16, 32. Each stage starts
with an overlapping patch embedding (conv 7x7 stride 4 padding 3 for the first stage,
3x3 stride 2 padding 1 after, then LayerNorm), stacks transformer blocks of efficient
self-attention (keys and values from the map shrunk by a ``R x R`` stride-``R`` conv +
LayerNorm, reduction ratios ``R`` = 8, 4, 2, 1) and Mix-FFN (Linear, 3x3 depthwise conv,
GELU, Linear; expansion 4), and ends with a LayerNorm. Stochastic depth rises linearly to
``drop_path_rate`` (0.1 in the official configs).

Variants (official configs): B0 widths (32, 64, 160, 256), depths (2, 2,
2, 2); B1 widths (64, 128, 320, 512), depths (2, 2, 2, 2); B2 widths as B1, depths (3, 4,
6, 3); heads (1, 2, 5, 8) for all.

All-MLP decoder: a linear layer maps each stage to ``E`` channels (E = 256 for B0 and
B1, 768 for B2), all are upsampled to stride 4 and concatenated, fused by a 1x1 conv-BN-
ReLU to ``E``, then dropout 0.1 and a 1x1 classifier.

Module names inside the encoder follow the NVlabs ``mit_b*.pth`` ImageNet checkpoints
(``patch_embed1``, ``block1.0.attn.sr``, ``norm1``...), so they load by name.

Any input size: patch embeddings are padded convolutions (output ``ceil(H / stride)``);
the spatial-reduction conv zero-pads its input to a multiple of ``R`` so small or odd
maps never shrink to nothing.

Encoder features: four maps, strides ``[4, 8, 16, 32]``, channels = the variant's widths.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.base import SegmentationModel
from engine.models.layers import ConvBNReLU, DropPath, upsample_to
from engine.models.registry import register_model
from engine.options import Option

HEADS = (1, 2, 5, 8)
REDUCTION_RATIOS = (8, 4, 2, 1)
MLP_RATIO = 4
DECODER_DROPOUT = 0.1
#: (kernel, stride) of each stage's overlapping patch embedding.
PATCH_EMBEDDINGS = ((7, 4), (3, 2), (3, 2), (3, 2))


def init_transformer_weights(module: nn.Module) -> None:
    """ViT/MiT initialisation: truncated normal (std 0.02) linear weights, unit LayerNorm."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_channels: int, dim: int, kernel_size: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size, stride, kernel_size // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        height, width = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), height, width  # (B, N, C) tokens


class EfficientSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, reduction_ratio: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.reduction_ratio = reduction_ratio
        if reduction_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, reduction_ratio, reduction_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, tokens, dim = x.shape
        context = x
        if self.reduction_ratio > 1:
            grid = x.transpose(1, 2).reshape(batch, dim, height, width)
            ratio = self.reduction_ratio
            grid = F.pad(grid, (0, -width % ratio, 0, -height % ratio))
            context = self.norm(self.sr(grid).flatten(2).transpose(1, 2))
        q = self.q(x).reshape(batch, tokens, self.heads, dim // self.heads).transpose(1, 2)
        k, v = self.kv(context).reshape(batch, -1, 2, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, C / heads)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class DepthwiseConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, _, dim = x.shape
        grid = x.transpose(1, 2).reshape(batch, dim, height, width)
        return self.dwconv(grid).flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    """Linear -> 3x3 depthwise conv -> GELU -> Linear: the conv leaks position, so no position embedding."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DepthwiseConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), height, width)))


class MixTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, reduction_ratio: int, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientSelfAttention(dim, heads, reduction_ratio)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MixFFN(dim, dim * MLP_RATIO)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x), height, width))


class MixTransformer(nn.Module):
    def __init__(self, widths: tuple[int, int, int, int], depths: tuple[int, int, int, int], drop_path_rate: float):
        super().__init__()
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        in_channels = 3
        for stage, (width, depth) in enumerate(zip(widths, depths, strict=True), start=1):
            kernel, stride = PATCH_EMBEDDINGS[stage - 1]
            first = sum(depths[: stage - 1])
            self.add_module(f"patch_embed{stage}", OverlapPatchEmbed(in_channels, width, kernel, stride))
            self.add_module(
                f"block{stage}",
                nn.ModuleList(
                    MixTransformerBlock(width, HEADS[stage - 1], REDUCTION_RATIOS[stage - 1], rates[first + index])
                    for index in range(depth)
                ),
            )
            self.add_module(f"norm{stage}", nn.LayerNorm(width))
            in_channels = width
        self.out_channels = list(widths)
        self.apply(init_transformer_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in range(1, len(self.out_channels) + 1):
            tokens, height, width = getattr(self, f"patch_embed{stage}")(x)
            for block in getattr(self, f"block{stage}"):
                tokens = block(tokens, height, width)
            tokens = getattr(self, f"norm{stage}")(tokens)
            x = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)
            features.append(x)
        return features


class AllMLPDecoder(nn.Module):
    def __init__(self, in_channels: list[int], embed_dim: int, num_classes: int):
        super().__init__()
        self.linear_c = nn.ModuleList(nn.Linear(channels, embed_dim) for channels in in_channels)
        self.linear_fuse = ConvBNReLU(embed_dim * len(in_channels), embed_dim, kernel_size=1)
        self.dropout = nn.Dropout2d(DECODER_DROPOUT)
        self.linear_pred = nn.Conv2d(embed_dim, num_classes, 1)
        self.apply(init_transformer_weights)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # -> (B, K, H/4, W/4)
        """The official decoder, reassociated: the same function, a fraction of its work.

        Officially each stage is projected to ``E`` channels (``linear_c``), upsampled to
        stride 4, and the four are concatenated (coarsest stage first) and fused by a 1x1
        conv. A 1x1 conv over a concatenation is the sum of its column blocks applied to
        each part, and both it and the projection are per-pixel linear maps, which commute
        with bilinear upsampling (its weights sum to one, so biases pass through too). So
        each stage goes through the product of its projection and its block of the fuse
        weight at its own resolution, and the four are upsampled and summed: at stride 4
        the network no longer runs a ``4E -> E`` conv (B0 at 256x256: 0.72 GMACs instead of
        1.76). The parameters, their names and the checkpoints are the official ones; the
        outputs agree to float rounding (``tests/engine/test_models.py``).
        """
        fuse, batch_norm, relu = self.linear_fuse
        assert isinstance(fuse, nn.Conv2d)
        blocks = fuse.weight.flatten(1).chunk(len(features), dim=1)[::-1]  # (E, 4E): column blocks, coarsest first
        fused: torch.Tensor | None = None
        for linear, feature, block in zip(self.linear_c, features, blocks, strict=True):
            assert isinstance(linear, nn.Linear)
            batch, _, height, width = feature.shape
            tokens = F.linear(feature.flatten(2).transpose(1, 2), block @ linear.weight, block @ linear.bias)
            stage = upsample_to(tokens.transpose(1, 2).reshape(batch, -1, height, width), features[0])
            fused = stage if fused is None else fused + stage
        assert fused is not None
        if fuse.bias is not None:  # a BatchNorm folded into the fuse conv (engine/models/folding.py)
            fused = fused + fuse.bias[:, None, None]
        return self.linear_pred(self.dropout(relu(batch_norm(fused))))


class SegFormer(SegmentationModel):
    def __init__(
        self,
        num_classes: int,
        widths: tuple[int, int, int, int],
        depths: tuple[int, int, int, int],
        embed_dim: int,
        *,
        drop_path_rate: float,
    ):
        encoder = MixTransformer(widths, depths, drop_path_rate)
        super().__init__(encoder, AllMLPDecoder(encoder.out_channels, embed_dim, num_classes))


PAPER = "Xie et al., NeurIPS 2021, arXiv:2105.15203"
#: Contiguous: a MiT is linear layers over (B, N, C) tokens, whose convolutions already read channels-last
#: views of them; bench/memory_format.py measured no steady gain from converting (docs/models.md).
MEMORY_FORMAT = "contiguous"
SEGFORMER_OPTIONS = (
    Option("drop_path_rate", "float", 0.1, "Stochastic depth of the last block (linearly less before); official: 0.1.",
           min=0.0, max=0.5),
)


@register_model("segformer_b0", family="SegFormer", paper=PAPER, memory_format=MEMORY_FORMAT,
                options=SEGFORMER_OPTIONS)
def segformer_b0(num_classes: int, **options) -> SegFormer:
    return SegFormer(num_classes, widths=(32, 64, 160, 256), depths=(2, 2, 2, 2), embed_dim=256, **options)


@register_model("segformer_b1", family="SegFormer", paper=PAPER, memory_format=MEMORY_FORMAT,
                options=SEGFORMER_OPTIONS)
def segformer_b1(num_classes: int, **options) -> SegFormer:
    return SegFormer(num_classes, widths=(64, 128, 320, 512), depths=(2, 2, 2, 2), embed_dim=256, **options)


@register_model("segformer_b2", family="SegFormer", paper=PAPER, memory_format=MEMORY_FORMAT,
                options=SEGFORMER_OPTIONS)
def segformer_b2(num_classes: int, **options) -> SegFormer:
    return SegFormer(num_classes, widths=(64, 128, 320, 512), depths=(3, 4, 6, 3), embed_dim=768, **options)
