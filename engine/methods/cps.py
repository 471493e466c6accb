"""`cps`: cross pseudo supervision between two differently initialised networks.

Chen, Yuan, Zeng & Wang, "Semi-supervised semantic segmentation with cross pseudo
supervision", CVPR 2021, arXiv:2106.01226, github.com/charlesCXK/TorchSemiSeg
(``exp.voc/voc8.res50v3+.CPS+CutMix``).

Defaults and their source: ``cps_weight`` 1.5 (the paper's trade-off weight for PASCAL
VOC; Cityscapes uses 6, and the VOC CutMix config sets 1); ``cutmix`` on, the paper's
"CPS + CutMix" of the config above (both networks label the two source images, the labels
are mixed with the box, and each network learns the other's mixed labels on the mixed
image; off is plain CPS, the paper's variant without CutMix, which collapses to background
from scratch at 16 labels, docs/methods.md), with TorchSemiSeg's masks (``cutmix_mask_prop_range`` 0.25-0.5,
``cutmix_boxmask_n_boxes`` 3, French et al.'s generator, ``CUTMIX_AREA``/``CUTMIX_BOXES``). Without
CutMix the cross supervision covers the labelled and the unlabelled predictions, as in
TorchSemiSeg's ``train.py``. Network 1 is evaluated.

Adaptation: the second network is built by the same ``model_factory`` under another
seed (``torch.initial_seed() + 1``), so pretrained backbones stay shared while the heads
differ; the CutMix partner is the previous batch image.
"""
from __future__ import annotations

from itertools import chain

import torch
import torch.nn.functional as F

from engine.data.masks import IGNORE_INDEX
from engine.methods.base import Method, supervised_loss
from engine.methods.common import PseudoLabels, box_masks, labeled_part, mix, roll_batch
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.models.base import predicted_classes
from engine.options import Option

#: TorchSemiSeg's CutMix masks: a 25-50% share drawn per box, 3 boxes each covering a third of it.
CUTMIX_AREA, CUTMIX_BOXES = (0.25, 0.5), 3


def cross_pseudo_supervision(pred_1: torch.Tensor, pred_2: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """CE(pred_1, argmax pred_2) + CE(pred_2, argmax pred_1); no gradient through the argmax."""
    label_1 = predicted_classes(pred_1.detach()).masked_fill(~inside, IGNORE_INDEX)
    label_2 = predicted_classes(pred_2.detach()).masked_fill(~inside, IGNORE_INDEX)
    return (F.cross_entropy(pred_1, label_2, ignore_index=IGNORE_INDEX)
            + F.cross_entropy(pred_2, label_1, ignore_index=IGNORE_INDEX))


@register_method(
    "cps",
    family="pseudo-labelling",
    paper="Chen et al., Semi-supervised semantic segmentation with cross pseudo supervision, "
          "CVPR 2021 (arXiv:2106.01226)",
    options=(
        Option("cps_weight", "float", 1.5, "Weight of the cross pseudo supervision loss.", min=0, max=100),
        Option("cutmix", "bool", True, "CPS + CutMix (the paper's best): cross supervision on CutMix-ed unlabelled "
               "images. Off: plain CPS, cross supervision on the labelled and unlabelled predictions."),
    ),
)
class CrossPseudoSupervision(Method):
    uses_unlabeled = True

    def __init__(self, model_factory, num_classes: int, *, cps_weight: float, cutmix: bool):
        super().__init__(model_factory, num_classes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch.initial_seed() + 1)
            self.model_2 = model_factory()
        self.cps_weight, self.cutmix = cps_weight, cutmix

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        img_u, padding = unlabeled["image_weak"], unlabeled["padding"]
        num_lb = len(img_x)

        if self.cutmix:
            box = box_masks(len(img_u), img_u.shape[-2], img_u.shape[-1], CUTMIX_AREA, img_u.device, boxes=CUTMIX_BOXES)
            out_1, out_2 = self.model.forward_train(img_x), self.model_2.forward_train(img_x)
            with torch.no_grad():
                pseudo_1 = PseudoLabels.from_logits(self.model(img_u), padding)
                pseudo_2 = PseudoLabels.from_logits(self.model_2(img_u), padding)
            img_u_mixed = mix(img_u, roll_batch(img_u), box)
            mixed_1, mixed_2 = pseudo_1.mixed(pseudo_1.rolled(), box), pseudo_2.mixed(pseudo_2.rolled(), box)
            loss_cps = (F.cross_entropy(self.model(img_u_mixed), mixed_2.targets(), ignore_index=IGNORE_INDEX)
                        + F.cross_entropy(self.model_2(img_u_mixed), mixed_1.targets(), ignore_index=IGNORE_INDEX))
        else:
            out_1 = self.model.forward_train(torch.cat((img_x, img_u)))
            out_2 = self.model_2.forward_train(torch.cat((img_x, img_u)))
            inside = torch.cat((torch.ones_like(mask_x, dtype=torch.bool), ~padding))
            loss_cps = cross_pseudo_supervision(out_1["out"], out_2["out"], inside)
            pseudo_2 = PseudoLabels.from_logits(out_2["out"][num_lb:], padding)
            out_1, out_2 = labeled_part(out_1, num_lb), labeled_part(out_2, num_lb)

        loss_x = supervised_loss(out_1, mask_x) + supervised_loss(out_2, mask_x)
        loss = loss_x + self.cps_weight * loss_cps

        # Network 2's labels are network 1's targets (and vice versa): every inside pixel is used.
        return {"loss": loss, "loss_x": loss_x.detach(), "loss_cps": loss_cps.detach(),
                **pseudo_label_diagnostics(pseudo_2.label, pseudo_2.inside, unlabeled)}

    def optimizer_parameters(self):
        return chain(self.model.parameters(), self.model_2.parameters())
