"""Which pseudo-labels to trust: one fixed confidence, or per-class thresholds that keep
the pseudo-labels' class distribution equal to the labelled one.

A single threshold (FixMatch's and UniMatch's 0.95) trusts the classes the model already
knows: on a canvas that is 78% background, the first pixels above 0.95 are background,
the student learns to call more pixels background, and the garment classes are worn down
until the pseudo-labels are "all background" (FixMatch at 16 labels, docs/results.md). He, Yang and
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

``debias`` mode: adaptive debiasing of DebiasPL (Wang, Wu, Lian and Yu, "Debiased learning
from naturally imbalanced pseudo-labels", CVPR 2022, arXiv:2201.01490; defaults as in the
USB benchmark's ``debiaspl``: tau 0.4, momentum 0.999, started uniform). The pseudo-labels
come from ``logits - tau * log(p_hat)``, ``p_hat`` being the running mean of the predicted
probabilities on unlabelled pixels: the more the model over-calls a class, the more that
class is held back. Unlike alignment it needs no labelled prior, which matters where the
labelled subset itself is biased (the 16 canvases of seeds 0 and 1 are 83% background
against 79% in the dataset). Only the pseudo-label half of DebiasPL is here, not its
adaptive marginal loss on the strong view.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.data.masks import IGNORE_INDEX
from engine.methods.common import PseudoLabels
from engine.options import Option

THRESHOLD_MODES = ("fixed", "distribution", "alignment", "debias")
ALIGNMENT_MOMENTUM = 0.99
DEBIAS_TAU, DEBIAS_MOMENTUM = 0.4, 0.999
#: FixMatch's and UniMatch's threshold on the weak view's confidence (``conf_thresh`` 0.95 in UniMatch's configs).
CONFIDENCE_THRESHOLD = Option("confidence_threshold", "float", 0.95,
                              "Weak-view confidence above which a pseudo-label is used.", min=0, max=1)
THRESHOLD_MODE = Option("threshold_mode", "str", "fixed",
                        "fixed: one confidence threshold for every class (the paper). distribution: the same number "
                        "of trusted pixels, shared among the classes as in the labelled masks (per-class thresholds, "
                        "DARS, He et al. ICCV 2021). alignment: probabilities scaled by labelled prior / predicted "
                        "marginal before the threshold (ReMixMatch's distribution alignment). debias: logits minus "
                        "0.4 log(running predicted marginal) (DebiasPL, Wang et al. CVPR 2022). All act against the "
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

    class_counts: torch.Tensor
    predicted: torch.Tensor

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
            self._track_marginal(probabilities, padding, ALIGNMENT_MOMENTUM, start=None)
            prior = self.class_counts / self.class_counts.sum()
            probabilities = rescaled(probabilities, prior / self.predicted.clamp_min(1e-8))
        elif self.mode == "debias":
            self._track_marginal(probabilities, padding, DEBIAS_MOMENTUM, start=1.0 / len(self.predicted))
            # softmax(logits - tau log p_hat) = probabilities * p_hat^-tau, renormalised.
            probabilities = rescaled(probabilities, self.predicted.clamp_min(1e-8).pow(-DEBIAS_TAU))
        return PseudoLabels.from_probabilities(probabilities, padding, keep_probabilities)

    def _track_marginal(self, probabilities: torch.Tensor, padding: torch.Tensor, momentum: float,
                        start: float | None) -> None:
        """Move ``predicted`` towards this batch's mean probabilities on inside pixels; an unset
        running mean starts at ``start`` for every class, or at the first batch's mean when None."""
        batch_mean = probabilities.permute(1, 0, 2, 3)[:, ~padding].mean(1).double()
        if self.predicted.sum() == 0:
            if start is None:
                self.predicted.copy_(batch_mean)
                return
            self.predicted.fill_(start)
        self.predicted.lerp_(batch_mean, 1.0 - momentum)

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


def rescaled(probabilities: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Class probabilities (B, C, H, W) times a per-class ``scale`` (C,), renormalised per pixel."""
    probabilities = probabilities * scale.float()[None, :, None, None]
    return probabilities / probabilities.sum(1, keepdim=True).clamp_min(1e-12)
