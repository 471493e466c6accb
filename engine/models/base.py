"""The one shape every architecture shares: encoder -> decoder (-> auxiliary decoder).

After segmentation_models_pytorch's ``base/model.py``: the forward pass lives here once
and a model file only assembles parts. That split is also what the semi-supervised
methods need, identically for every architecture:

* ``encoder(x) -> list[Tensor]``: the feature maps the decoder reads, ordered from the
  highest to the lowest resolution (each architecture's docstring states the strides
  and channels). UniMatch perturbs exactly this list (feature dropout), CCT feeds it,
  perturbed, to copies of the decoder.
* ``decoder(features) -> Tensor``: class logits ``(B, num_classes, h, w)`` at the
  decoder's own stride; ``decode`` resizes them to the input size.
* ``aux_decoder(features) -> Tensor`` (optional, training only): the deep-supervision
  head of PSPNet / DDRNet, logits at its own stride.

``forward(x)`` always returns logits at the input resolution, in train and eval mode, so
evaluation, export and simple methods never see the difference. Methods that need more
call ``forward_train``, which returns a dict with ``out`` (logits at input size),
``aux`` (auxiliary logits at input size or None) and ``features`` (the encoder list).
``forward_train(x, perturb)`` also decodes the perturbed features, ``out_fp``, in the
same decoder batch as the clean ones, as UniMatch's ``forward(x, need_fp=True)`` does
(``model/semseg/deeplabv3plus.py``): the decoder's BatchNorm then normalises clean and
perturbed features together, rather than the perturbed ones on their own statistics.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.models.resize import bilinear_resize


def predicted_classes(scores: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The index of the largest score along ``dim``: the indices ``scores.argmax(dim)`` gives (ties go
    to the first either way), through ``max``, whose CPU kernel reduces across the channels of an
    NCHW tensor much faster. For 19 classes over a (1, 19, 512, 1024) tensor it took 38.6 ms against
    argmax's 90.1 (2 classes: 2.1 against 32.0; 150 classes at 256x256: level), and 0.76-0.87 of
    argmax's time in the channels_last layout (torch 2.13 CPU, one thread). Every prediction,
    evaluation and pseudo-label here reads classes through it."""
    return scores.max(dim).indices


def resize_logits(logits: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    return bilinear_resize(logits, size)


class SegmentationModel(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, aux_decoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.aux_decoder = aux_decoder

    def decode(self, features: list[torch.Tensor], size: tuple[int, ...],
               decoder: nn.Module | None = None) -> torch.Tensor:
        """Logits at ``size`` from encoder features, through ``decoder`` (default: our own).

        In training they are resized in the contiguous layout whatever the network's: the loss's
        log-softmax reduces over classes and copied channels_last logits to that layout at full
        size first, on the CPU 16 ms of DDRNet-23-slim's 250 ms step at 256x256 (0.97 of the
        step time without the copy, bench/memory_format.py). Eval mode keeps the network's layout,
        in which the resize measured faster (the argmax reads either)."""
        logits = (decoder or self.decoder)(features)
        return resize_logits(logits.contiguous() if self.training else logits, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, K, H, W) logits
        return self.decode(self.encoder(x), x.shape[-2:])

    def forward_train(self, x: torch.Tensor, perturb: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict:
        size = x.shape[-2:]
        features = self.encoder(x)
        aux = None
        if self.aux_decoder is not None and self.training:
            aux = self.decode(features, size, self.aux_decoder)
        if perturb is None:
            return {"out": self.decode(features, size), "aux": aux, "features": features}
        out, out_fp = self.decode([torch.cat((f, perturb(f))) for f in features], size).chunk(2)
        return {"out": out, "out_fp": out_fp, "aux": aux, "features": features}
