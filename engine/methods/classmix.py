"""`classmix`: mean teacher with images mixed along the teacher's predicted classes.

Olsson, Tranheden, Pinto & Svensson, "ClassMix: Segmentation-based data augmentation
for semi-supervised learning", WACV 2021, arXiv:2007.07936, github.com/WilhelmT/ClassMix
(``trainSSL.py``, ``configs/configVOC.json``).

Defaults and their source: ``ema_decay`` 0.99 (``trainSSL.py``'s EMA teacher);
``consistency_weight`` 1 and ``consistency_loss`` CE (``configVOC.json``);
``pixel_weight`` ``threshold_uniform``: every pixel of the mixed target is weighted by
the share of teacher pixels with confidence >= 0.968 (``confidence_threshold``).
Half of the classes (rounded up) of the teacher's prediction on one image are pasted
onto the next. The student is evaluated, as in ``trainSSL.py``.

Adaptation: the mixing partner is the previous image of the batch (``common.roll_batch``);
the strong photometric view stands in for ClassMix's colour jitter + blur after mixing.
"""
from __future__ import annotations

from engine.methods.base import supervised_loss
from engine.methods.common import PseudoLabels, classmix_masks, mix, roll_batch, weighted_cross_entropy
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.methods.teacher import EMA_DECAY, TeacherMethod
from engine.options import Option


@register_method(
    "classmix",
    family="consistency regularisation",
    paper="Olsson et al., ClassMix: Segmentation-based data augmentation for semi-supervised learning, "
          "WACV 2021 (arXiv:2007.07936)",
    options=(
        EMA_DECAY,
        Option("consistency_weight", "float", 1.0, "Weight of the cross-entropy on mixed pseudo-labels.",
               min=0, max=1e4),
        Option("confidence_threshold", "float", 0.968,
               "Teacher confidence counted as confident; the loss is scaled by their share.", min=0, max=1),
    ),
)
class ClassMix(TeacherMethod):
    uses_unlabeled = True
    evaluates_teacher = False  # trainSSL.py evaluates the student

    def __init__(self, model_factory, num_classes: int, *, ema_decay: float, consistency_weight: float,
                 confidence_threshold: float):
        super().__init__(model_factory, num_classes, ema_decay=ema_decay)
        self.consistency_weight, self.confidence_threshold = consistency_weight, confidence_threshold

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        img_u_w, img_u_s = unlabeled["image_weak"], unlabeled["image_strong1"]

        pseudo = PseudoLabels.from_logits(self.teacher_predict(img_u_w), unlabeled["padding"])
        # ClassMix pastes the chosen classes of image i onto its partner: mask 1 = from image i.
        class_mask = classmix_masks(pseudo.label, pseudo.inside, self.num_classes)
        img_u_mixed = mix(roll_batch(img_u_s), img_u_s, class_mask)
        pseudo_mixed = pseudo.rolled().mixed(pseudo, class_mask)

        loss_x = supervised_loss(self.model.forward_train(img_x), mask_x)
        weight = pseudo.confident_fraction(self.confidence_threshold)
        loss_u = weighted_cross_entropy(self.model(img_u_mixed), pseudo_mixed, weight)
        loss = loss_x + self.consistency_weight * loss_u

        return {"loss": loss, "loss_x": loss_x.detach(), "loss_u": loss_u.detach(),
                **pseudo_label_diagnostics(pseudo.label, pseudo.confident(self.confidence_threshold), unlabeled)}
