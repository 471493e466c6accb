"""SETR: Rethinking Semantic Segmentation from a Sequence-to-Sequence Perspective with Transformers.

Zheng, Lu, Zhao, Zhu, Luo, Wang, Fu, Feng, Xiang, Torr and Zhang, CVPR 2021,
arXiv:2012.15840; official code https://github.com/fudan-zvg/SETR.

Encoder: a plain ViT (Dosovitskiy et al., ICLR 2021, arXiv:2010.11929): 16x16 patch
embedding (a stride-16 conv), learnable position embeddings, pre-LayerNorm blocks of
multi-head self-attention and a GELU MLP (expansion 4), a final LayerNorm; no class
token (segmentation reads every patch). Widths and depths of DeiT (Touvron et al. 2021,
arXiv:2012.12877): Tiny 192 wide, 12 blocks, 3 heads; Small 384, 12 blocks, 6 heads.
SETR itself uses ViT-Large; the small encoders keep the family trainable on one GPU.

Position embeddings are learnt on a ``pos_grid x pos_grid`` patch grid (32 = 512-pixel
crops, SETR's ADE20K setting) and bilinearly interpolated to the grid of any input.
Inputs whose sides are not multiples of 16 are zero-padded on the bottom and right; the
logits are cropped back to the input before returning.

SETR-naive head (paper and official configs): 1x1 conv to 256 channels, BN, ReLU, 1x1 classifier,
bilinear upsampling to the input. SETR's auxiliary heads on intermediate blocks are
omitted.

Encoder features: one map, the final tokens as a grid, stride 16, ``width`` channels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.base import SegmentationModel
from engine.models.layers import DropPath
from engine.models.registry import register_model
from engine.models.segformer import init_transformer_weights
from engine.options import Option

PATCH_SIZE = 16
MLP_RATIO = 4
NAIVE_HEAD_CHANNELS = 256


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, C / heads)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * MLP_RATIO)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    def __init__(self, width: int, depth: int, heads: int, pos_grid: int, drop_path_rate: float):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, width, PATCH_SIZE, PATCH_SIZE)
        self.pos_embed = nn.Parameter(torch.zeros(1, width, pos_grid, pos_grid))
        rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(Block(width, heads, rate) for rate in rates)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.out_channels = [width]
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(init_transformer_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % PATCH_SIZE, 0, -height % PATCH_SIZE))
        x = self.patch_embed(x)  # (B, C, H/16, W/16)
        grid = x.shape[-2:]
        pos = (self.pos_embed if self.pos_embed.shape[-2:] == grid
               else F.interpolate(self.pos_embed, size=grid, mode="bilinear", align_corners=False))
        tokens = (x + pos).flatten(2).transpose(1, 2)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return [tokens.transpose(1, 2).reshape(x.shape)]


class NaiveHead(nn.Sequential):
    def __init__(self, in_channels: int, num_classes: int):
        super().__init__(
            nn.Conv2d(in_channels, NAIVE_HEAD_CHANNELS, 1),
            nn.BatchNorm2d(NAIVE_HEAD_CHANNELS),
            nn.ReLU(inplace=True),
            nn.Conv2d(NAIVE_HEAD_CHANNELS, num_classes, 1),
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # -> (B, K, ceil(H/16), ceil(W/16))
        return super().forward(features[-1])


class SETR(SegmentationModel):
    def __init__(self, num_classes: int, width: int, heads: int, depth: int = 12, *, pos_grid: int,
                 drop_path_rate: float):
        encoder = VisionTransformer(width, depth, heads, pos_grid, drop_path_rate)
        super().__init__(encoder, NaiveHead(width, num_classes))

    def decode(self, features: list[torch.Tensor], size: tuple[int, ...],
               decoder: nn.Module | None = None) -> torch.Tensor:
        """Upsample x16 to the padded input, then crop the padding off (keeps pixels aligned)."""
        grid = features[-1].shape[-2:]
        logits = super().decode(features, (PATCH_SIZE * grid[0], PATCH_SIZE * grid[1]), decoder)
        return logits[..., : size[0], : size[1]]


PAPER = "Zheng et al., CVPR 2021, arXiv:2012.15840 (ViT: Dosovitskiy et al., arXiv:2010.11929)"
#: Contiguous: a ViT's only convolutions are the patch embedding and the head; bench/memory_format.py measured
#: no steady gain from channels_last (docs/models.md).
MEMORY_FORMAT = "contiguous"
SETR_OPTIONS = (
    Option("pos_grid", "int", 32,
           "Side of the learnt position-embedding grid in patches (32 = 512-pixel crops); interpolated to any input.",
           min=4, max=128),
    Option("drop_path_rate", "float", 0.1, "Stochastic depth of the last block (linearly less before); DeiT: 0.1.",
           min=0.0, max=0.5),
)


@register_model("setr_vit_tiny", family="SETR", paper=PAPER, memory_format=MEMORY_FORMAT,
                options=SETR_OPTIONS)
def setr_vit_tiny(num_classes: int, **options) -> SETR:
    return SETR(num_classes, width=192, heads=3, **options)


@register_model("setr_vit_small", family="SETR", paper=PAPER, memory_format=MEMORY_FORMAT,
                options=SETR_OPTIONS)
def setr_vit_small(num_classes: int, **options) -> SETR:
    return SETR(num_classes, width=384, heads=6, **options)
