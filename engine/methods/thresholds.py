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
            num_classes = len(self.class_counts)
            known = mask.masked_fill(mask == IGNORE_INDEX, num_classes).flatten()  # ignored pixels: one extra bin
            counts = torch.zeros(num_classes + 1, dtype=torch.float64, device=mask.device)
            self.class_counts += counts.scatter_add_(0, known, torch.ones_like(known, dtype=torch.float64))[:-1]

    @torch.no_grad()
    def pseudo_labels(self, logits: torch.Tensor, padding: torch.Tensor,
                      keep_probabilities: bool = False) -> PseudoLabels:
        """Without a host read: where a mode has nothing to go on yet (no labelled pixel counted) the
        running mean and the probabilities are kept by ``torch.where``, not by an ``if`` on a tensor."""
        probabilities = logits.detach().float().softmax(1)
        if self.mode == "alignment":
            total = self.class_counts.sum()
            self._track_marginal(probabilities, padding, ALIGNMENT_MOMENTUM, start=None, active=total > 0)
            prior = self.class_counts / total.clamp_min(1)
            aligned = rescaled(probabilities, prior / self.predicted.clamp_min(1e-8))
            probabilities = torch.where(total > 0, aligned, probabilities)
        elif self.mode == "debias":
            self._track_marginal(probabilities, padding, DEBIAS_MOMENTUM, start=1.0 / len(self.predicted))
            # softmax(logits - tau log p_hat) = probabilities * p_hat^-tau, renormalised.
            probabilities = rescaled(probabilities, self.predicted.clamp_min(1e-8).pow(-DEBIAS_TAU))
        return PseudoLabels.from_probabilities(probabilities, padding, keep_probabilities)

    def _track_marginal(self, probabilities: torch.Tensor, padding: torch.Tensor, momentum: float,
                        start: float | None, active: torch.Tensor | None = None) -> None:
        """Move ``predicted`` towards this batch's mean probabilities on inside pixels; an unset
        running mean starts at ``start`` for every class, or at the first batch's mean when None.
        Nothing moves where ``active`` (a bool tensor) is False."""
        inside = (~padding)[:, None].float()
        batch_mean = ((probabilities * inside).sum((0, 2, 3)) / inside.sum().clamp_min(1)).double()
        unset = self.predicted.sum() == 0
        if start is None:
            moved = torch.where(unset, batch_mean, self.predicted.lerp(batch_mean, 1.0 - momentum))
        else:
            moved = torch.where(unset, start, self.predicted).lerp(batch_mean, 1.0 - momentum)
        self.predicted.copy_(moved if active is None else torch.where(active, moved, self.predicted))

    @torch.no_grad()
    def __call__(self, pseudo: PseudoLabels) -> float | torch.Tensor:
        """In ``distribution`` mode, class c's threshold is the confidence of its ``quota_c``-th most
        confident pixel (2, above any, for a quota of 0): read from one sort of the pixels by class and
        confidence for all classes, without a loop over the classes or a host read."""
        if self.mode != "distribution":
            return self.threshold
        num_classes = len(self.class_counts)
        total = self.class_counts.sum()
        trusted = pseudo.confident(self.threshold).sum()
        quotas = (self.class_counts / total.clamp_min(1) * trusted).round().long()
        # Pixels grouped by class (outside ones last, as class C), each group by descending confidence.
        confidence = pseudo.confidence.flatten()
        label = pseudo.label.masked_fill(~pseudo.inside, num_classes).flatten()
        confidence, order = confidence.sort(descending=True, stable=True)
        label, regroup = label[order].sort(stable=True)
        confidence = confidence[regroup]
        sizes = torch.zeros(num_classes + 1, dtype=torch.long, device=label.device)
        sizes = sizes.scatter_add_(0, label, torch.ones_like(label))[:-1]
        taken = torch.minimum(quotas, sizes)
        position = (sizes.cumsum(0) - sizes + taken - 1).clamp_min(0)
        thresholds = torch.where(taken > 0, confidence[position], 2.0)
        return torch.where(total > 0, thresholds, self.threshold)


def rescaled(probabilities: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Class probabilities (B, C, H, W) times a per-class ``scale`` (C,), renormalised per pixel."""
    probabilities = probabilities * scale.float()[None, :, None, None]
    return probabilities / probabilities.sum(1, keepdim=True).clamp_min(1e-12)
