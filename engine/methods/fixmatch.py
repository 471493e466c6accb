"""`fixmatch`: confident pseudo-labels of the weak view supervise the strong view.

Sohn et al., "FixMatch: Simplifying semi-supervised learning with consistency and
confidence", NeurIPS 2020, arXiv:2001.07685, github.com/google-research/fixmatch; for
segmentation as in UniMatch's FixMatch baseline (github.com/LiheYoung/UniMatch,
``fixmatch.py``, ``configs/pascal.yaml``).

Defaults and their source: ``conf_thresh`` 0.95 (UniMatch configs) ->
``confidence_threshold``; the strong view is CutMix-ed with another unlabelled image
(``cutmix`` on, UniMatch's ``fixmatch.py``); the loss is ``(loss_x + loss_u_s) / 2``
with the unlabelled term averaged over all non-padding pixels (UniMatch's
``criterion_u`` with ``reduction='none'``). The student is evaluated.

Adaptation: the CutMix partner is the previous image of the batch, with its weak-view
prediction reused as the partner's pseudo-label (``common.roll_batch``).

Not in the paper, off by default: ``threshold_mode`` (class-balanced pseudo-labels,
``engine.methods.thresholds``), against the drift towards frequent classes measured in
docs/results.md.
"""
from __future__ import annotations

import torch

from engine.methods.base import Method, supervised_loss
from engine.methods.common import confident_cross_entropy, labeled_part, mix, roll_batch
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.methods.thresholds import CONFIDENCE_THRESHOLD, THRESHOLD_MODE, PseudoLabelThreshold
from engine.options import Option


@register_method(
    "fixmatch",
    family="pseudo-labelling",
    paper="Sohn et al., FixMatch, NeurIPS 2020 (arXiv:2001.07685); segmentation version of UniMatch's code",
    options=(
        CONFIDENCE_THRESHOLD,
        Option("cutmix", "bool", True, "CutMix the strong view with another unlabelled image."),
        THRESHOLD_MODE,
    ),
)
class FixMatch(Method):
    uses_unlabeled = True

    def __init__(self, model_factory, num_classes: int, *, confidence_threshold: float, cutmix: bool,
                 threshold_mode: str):
        super().__init__(model_factory, num_classes)
        self.cutmix = cutmix
        self.threshold = PseudoLabelThreshold(num_classes, confidence_threshold, threshold_mode)

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        img_u_w, img_u_s = unlabeled["image_weak"], unlabeled["image_strong1"]
        box = unlabeled["cutmix_box1"] if self.cutmix else torch.zeros_like(unlabeled["cutmix_box1"])

        output = self.model.forward_train(torch.cat((img_x, img_u_w)))  # one BN batch, as in UniMatch
        pred_u_w = output["out"][len(img_x):]
        self.threshold.observe(mask_x)
        pseudo = self.threshold.pseudo_labels(pred_u_w, unlabeled["padding"])
        pseudo_s = pseudo.mixed(pseudo.rolled(), box)
        threshold = self.threshold(pseudo)
        pred_u_s = self.model(mix(img_u_s, roll_batch(img_u_s), box))

        loss_x = supervised_loss(labeled_part(output, len(img_x)), mask_x)
        loss_u_s = confident_cross_entropy(pred_u_s, pseudo_s, threshold)
        loss = (loss_x + loss_u_s) / 2.0

        return {"loss": loss, "loss_x": loss_x.detach(), "loss_u_s": loss_u_s.detach(),
                **pseudo_label_diagnostics(pseudo.label, pseudo.confident(threshold), unlabeled)}
