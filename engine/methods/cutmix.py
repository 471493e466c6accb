"""`cutmix`: mean teacher with CutMix-mixed unlabelled images.

French, Laine, Aila, Mackiewicz & Finlayson, "Semi-supervised semantic segmentation
needs strong, varied perturbations", BMVC 2020, arXiv:1906.01916,
github.com/Britefury/cutmix-semisup-seg (``train_seg_semisup_mask_mt.py``).

Defaults (the script's click options): ``teacher_alpha`` 0.99 -> ``ema_decay``;
``cons_weight`` 1.0; ``conf_thresh`` 0.97 with ``conf_per_pixel`` off, i.e. the
consistency loss is scaled by the *share* of confident teacher pixels; ``cons_loss_fn``
``var`` (squared error of probabilities summed over classes); ``mask_prop_range`` 0.5
with one box (``mask_area``); ``rampup`` -1 (none). The teacher is evaluated
(``eval_net = teacher_net``).

Adaptation: the mixing partner is the previous image of the same batch (see
``common.roll_batch``), so one teacher forward serves both; teacher and student see the
weak view (the script's default has no colour augmentation).

Not in the paper, off by default: ``consistency_loss="ce"`` replaces the squared error by
UniMatch's thresholded cross-entropy to the teacher's hard labels (``common.confident_cross_entropy``
at ``confidence_threshold``, averaged over every inside pixel, so it needs no confident-share
scaling): with everything else French's, it isolates the kind of target in the pseudo-label
drift of docs/results.md.
"""
from __future__ import annotations

from engine.methods.base import supervised_loss
from engine.methods.common import PseudoLabels, box_masks, confident_cross_entropy, mix, roll_batch
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.methods.teacher import EMA_DECAY, TeacherMethod
from engine.options import Option


@register_method(
    "cutmix",
    family="consistency regularisation",
    paper="French et al., Semi-supervised semantic segmentation needs strong, varied perturbations, "
          "BMVC 2020 (arXiv:1906.01916)",
    options=(
        EMA_DECAY,
        Option("consistency_weight", "float", 1.0, "Weight of the squared-error consistency loss.", min=0, max=1e4),
        Option("confidence_threshold", "float", 0.97,
               "Teacher confidence counted as confident; the loss is scaled by their share.", min=0, max=1),
        Option("mask_area", "float", 0.5, "Area of the CutMix box as a share of the image.", min=0.01, max=0.99),
        Option("consistency_loss", "str", "var", "var (French et al.): squared error of probabilities summed over "
               "classes, scaled by the confident share. ce: cross-entropy to the teacher's hard labels on the "
               "pixels above the confidence threshold (UniMatch's loss; an ablation).", choices=("var", "ce")),
    ),
)
class CutMix(TeacherMethod):
    uses_unlabeled = True

    def __init__(self, model_factory, num_classes: int, *, ema_decay: float, consistency_weight: float,
                 confidence_threshold: float, mask_area: float, consistency_loss: str):
        super().__init__(model_factory, num_classes, ema_decay=ema_decay)
        self.consistency_weight = consistency_weight
        self.confidence_threshold, self.mask_area = confidence_threshold, mask_area
        self.consistency_loss = consistency_loss

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        img_u = unlabeled["image_weak"]
        batch, _, height, width = img_u.shape

        pred_u_teacher = self.teacher_predict(img_u)
        box = box_masks(batch, height, width, self.mask_area, img_u.device)
        img_u_mixed = mix(img_u, roll_batch(img_u), box)
        pseudo = PseudoLabels.from_logits(pred_u_teacher, unlabeled["padding"])
        pseudo_mixed = pseudo.mixed(pseudo.rolled(), box)

        loss_x = supervised_loss(self.model.forward_train(img_x), mask_x)
        pred_mixed = self.model(img_u_mixed)
        if self.consistency_loss == "ce":
            loss_u = confident_cross_entropy(pred_mixed, pseudo_mixed, self.confidence_threshold)
        else:
            pred_mixed_teacher = mix(pred_u_teacher, roll_batch(pred_u_teacher), box)
            squared = (pred_mixed.softmax(1) - pred_mixed_teacher.softmax(1)).pow(2).sum(1)  # (B, H, W)
            confident_share = pseudo_mixed.confident_fraction(self.confidence_threshold)
            loss_u = (squared * pseudo_mixed.inside).mean() * confident_share
        loss = loss_x + self.consistency_weight * loss_u

        return {"loss": loss, "loss_x": loss_x.detach(), "loss_u": loss_u.detach(),
                **pseudo_label_diagnostics(pseudo.label, pseudo.confident(self.confidence_threshold), unlabeled)}
