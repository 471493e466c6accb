"""Which pseudo-labels to trust: one fixed confidence, or per-class thresholds that keep
the pseudo-labels' class distribution equal to the labelled one.

A single threshold (FixMatch's and UniMatch's 0.95) trusts the classes the model already
knows: on a canvas that is 78% background, the first pixels above 0.95 are background,
the student learns to call more pixels background, and the garment classes are worn down
until the pseudo-labels are "all background" (docs/results.md, finding 3). He, Yang and
Qi describe the same bias on Cityscapes and answer it with distribution-aware thresholds
("Re-distributing biased pseudo labels for semi-supervised semantic segmentation: a
baseline investigation", ICCV 2021, arXiv:2107.11279, github.com/CVMI-Lab/DARS).

``distribution`` mode, in the manner of DARS: the global threshold still decides *how
many* pixels are trusted (so training keeps FixMatch's curriculum, from few pixels to
many), but those ``n`` pixels are shared among the classes in proportion to the class
frequencies of the labelled masks seen so far: class ``c`` gets the ``n * prior_c`` most
confident pixels predicted as ``c``. The result is a threshold per class, above 0.95 for
a class the model over-predicts (background), below it for one it under-predicts.
Differences from DARS: the quotas are recomputed on every unlabelled batch (DARS sets
them once per round of offline self-training) and the prior is counted from the labelled
batches the method sees.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.methods.base import IGNORE_INDEX
from engine.methods.common import PseudoLabels
from engine.options import Option

THRESHOLD_MODES = ("fixed", "distribution")
THRESHOLD_MODE = Option("threshold_mode", "str", "fixed",
                        "fixed: one confidence threshold for every class (the paper). distribution: the same number "
                        "of trusted pixels, shared among the classes as in the labelled masks (per-class thresholds, "
                        "DARS, He et al. ICCV 2021), against the drift of pseudo-labels towards frequent classes.",
                        choices=THRESHOLD_MODES)


class PseudoLabelThreshold(nn.Module):
    """Turns a confidence threshold into what ``PseudoLabels.confident`` compares against.

    ``observe(mask)`` counts the labelled classes (a buffer, so it is checkpointed and a
    resumed run keeps its prior); ``__call__(pseudo)`` gives the float threshold in
    ``fixed`` mode and a (C,) tensor of per-class thresholds in ``distribution`` mode.
    """

    def __init__(self, num_classes: int, threshold: float, mode: str = "fixed"):
        super().__init__()
        if mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {', '.join(THRESHOLD_MODES)}, not {mode!r}")
        self.threshold, self.mode = threshold, mode
        self.register_buffer("class_counts", torch.zeros(num_classes, dtype=torch.float64))

    @torch.no_grad()
    def observe(self, mask: torch.Tensor) -> None:
        if self.mode == "distribution":
            known = mask[mask != IGNORE_INDEX]
            self.class_counts += torch.bincount(known.flatten(), minlength=len(self.class_counts)).double()

    @torch.no_grad()
    def __call__(self, pseudo: PseudoLabels) -> float | torch.Tensor:
        if self.mode == "fixed" or self.class_counts.sum() == 0:
            return self.threshold
        trusted = int(pseudo.confident(self.threshold).sum())
        quotas = (self.class_counts / self.class_counts.sum() * trusted).round().long().tolist()
        # A class with no quota trusts nothing: its threshold is above any probability.
        thresholds = torch.full((len(quotas),), 2.0, device=pseudo.confidence.device)
        for c, quota in enumerate(quotas):
            confidences = pseudo.confidence[(pseudo.label == c) & pseudo.inside]
            count = min(quota, confidences.numel())
            if count:
                thresholds[c] = confidences.topk(count).values[-1]
        return thresholds
