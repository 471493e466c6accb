"""How good are a method's pseudo-labels? The two curves every SSL experiment page shows.

``pseudo_label_coverage``: the share of unlabelled image pixels (padding excluded) that
the method trusts (above its confidence threshold, or selected by its own criterion).
``pseudo_label_accuracy``: the accuracy of those trusted pseudo-labels against the ground
truth the label budget hid (``unlabeled["hidden_mask"]``, 255 where unknown).

The hidden mask is read here and only here, under ``no_grad``: it scores pseudo-labels,
it never trains anything. Both are tensors on the device, computed without reading a value
on the host (issue 22: no host-device synchronisation inside a step).
"""
from __future__ import annotations

import torch

from engine.data.masks import IGNORE_INDEX


@torch.no_grad()
def pseudo_label_diagnostics(label: torch.Tensor, trusted: torch.Tensor, unlabeled: dict) -> dict[str, torch.Tensor]:
    """Coverage and accuracy of ``label`` (B, H, W) on the ``trusted`` (B, H, W) pixels.

    Accuracy is NaN when no trusted pixel has a known ground truth (nothing to score), rather
    than a misleading 0: the trainer's ``LossMeter`` leaves a NaN out of its mean, as a step
    without the value. Deciding that here (``if scored.any()``) would wait for the device.
    """
    inside = ~unlabeled["padding"]
    hidden = unlabeled["hidden_mask"]
    trusted = trusted & inside
    scored = trusted & (hidden != IGNORE_INDEX)
    correct = (scored & (label == hidden)).sum().float()
    return {"pseudo_label_coverage": trusted.sum().float() / inside.sum().clamp_min(1),
            "pseudo_label_accuracy": correct / scored.sum()}  # 0 / 0 = NaN: nothing to score
