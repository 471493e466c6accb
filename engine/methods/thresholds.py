"""Which pseudo-labels to trust: one fixed confidence, or per-class thresholds that keep
the pseudo-labels' class distribution equal to the labelled one.

A single threshold (FixMatch's and UniMatch's 0.95) trusts the classes the model already
knows: on a canvas that is 78% background, the first pixels above 0.95 are background,
the student learns to call more pixels background, and the garment classes are worn down
until the pseudo-labels are "all background" (docs/results-cpu-1500.md, section 2). He, Yang and
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

``alignment`` mode: distribution alignment (Berthelot et al., "ReMixMatch", ICLR 2020,
arXiv:1911.09785, github.com/google-research/remixmatch): before thresholding, each
pixel's class probabilities are multiplied by ``prior / running mean of the predicted
probabilities`` and renormalised. Where the model over-predicts background, background
probabilities shrink and the others grow, so fewer background pixels pass the threshold
and some pixels change label towards the under-predicted classes. ReMixMatch averages
the predictions of the last 128 batches; here an exponential average with momentum
``ALIGNMENT_MOMENTUM`` (about the last 100 batches), started at the first batch.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.methods.base import IGNORE_INDEX
from engine.methods.common import PseudoLabels
from engine.options import Option

THRESHOLD_MODES = ("fixed", "distribution", "alignment")
ALIGNMENT_MOMENTUM = 0.99
THRESHOLD_MODE = Option("threshold_mode", "str", "fixed",
                        "fixed: one confidence threshold for every class (the paper). distribution: the same number "
                        "of trusted pixels, shared among the classes as in the labelled masks (per-class thresholds, "
                        "DARS, He et al. ICCV 2021). alignment: probabilities scaled by labelled prior / predicted "
                        "marginal before the threshold (ReMixMatch's distribution alignment). Both act against the "
                        "drift of pseudo-labels towards frequent classes.",
                        choices=THRESHOLD_MODES)


class PseudoLabelThreshold(nn.Module):
    """Makes pseudo-labels from a prediction and says which to trust.

    ``observe(mask)`` counts the labelled classes; ``pseudo_labels(logits, padding)`` makes
    the hard labels (distribution-aligned in ``alignment`` mode); ``__call__(pseudo)``
    gives what ``PseudoLabels.confident`` compares against: the float threshold, or a (C,)
    tensor of per-class thresholds in ``distribution`` mode. The counts and the running
    prediction are buffers, so they are checkpointed and a resumed run keeps them.
    """

    def __init__(self, num_classes: int, threshold: float, mode: str = "fixed"):
        super().__init__()
        if mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {', '.join(THRESHOLD_MODES)}, not {mode!r}")
        self.threshold, self.mode = threshold, mode
        self.register_buffer("class_counts", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("predicted", torch.zeros(num_classes, dtype=torch.float64))  # alignment's running mean

    @torch.no_grad()
    def observe(self, mask: torch.Tensor) -> None:
        if self.mode != "fixed":
            known = mask[mask != IGNORE_INDEX]
            self.class_counts += torch.bincount(known.flatten(), minlength=len(self.class_counts)).double()

    @torch.no_grad()
    def pseudo_labels(self, logits: torch.Tensor, padding: torch.Tensor,
                      keep_probabilities: bool = False) -> PseudoLabels:
        probabilities = logits.detach().float().softmax(1)
        if self.mode == "alignment" and self.class_counts.sum() > 0:
            inside = ~padding
            batch_mean = probabilities.permute(1, 0, 2, 3)[:, inside].mean(1).double()
            if self.predicted.sum() == 0:
                self.predicted.copy_(batch_mean)
            else:
                self.predicted.lerp_(batch_mean, 1.0 - ALIGNMENT_MOMENTUM)
            prior = self.class_counts / self.class_counts.sum()
            scale = (prior / self.predicted.clamp_min(1e-8)).float()
            probabilities = probabilities * scale[None, :, None, None]
            probabilities = probabilities / probabilities.sum(1, keepdim=True).clamp_min(1e-12)
        return PseudoLabels.from_probabilities(probabilities, padding, keep_probabilities)

    @torch.no_grad()
    def __call__(self, pseudo: PseudoLabels) -> float | torch.Tensor:
        if self.mode != "distribution" or self.class_counts.sum() == 0:
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
