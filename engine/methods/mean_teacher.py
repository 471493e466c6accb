"""`mean_teacher`: an EMA teacher whose predictions the student must match.

Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017,
arXiv:1703.01780, github.com/CuriousAI/mean-teacher; for segmentation as in the
TorchSemiSeg baseline (github.com/charlesCXK/TorchSemiSeg,
``exp.voc/voc8.res50v3+.MeanTeacher``).

Defaults and their source:

* ``ema_decay`` 0.99: TorchSemiSeg's ``C.ema_decay`` (also French et al.'s ``teacher_alpha``).
* ``consistency_weight`` 100: TorchSemiSeg's ``C.unsup_weight``, on the mean squared
  error of softmax outputs (``nn.MSELoss`` over classes and pixels), as CuriousAI's
  ``softmax_mse_loss`` with ``consistency`` 100 for CIFAR-10.
* ``rampup`` 0.1 of the run: CuriousAI's sigmoid ramp-up exp(-5 (1 - t)^2); TorchSemiSeg
  has none, so its length follows CCT's ``ramp_up`` 0.1 (the fraction of training).

Adaptation: the student sees the strong photometric view and the teacher the weak one
(same geometry, so no warping of targets); the teacher predicts in eval mode and is
the network evaluated, as in CuriousAI's and French et al.'s code.
"""
from __future__ import annotations

from engine.methods.base import supervised_loss
from engine.methods.common import PseudoLabels, sigmoid_rampup, softmax_mse
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.methods.teacher import EMA_DECAY, TeacherMethod
from engine.options import Option


@register_method(
    "mean_teacher",
    family="consistency regularisation",
    paper="Tarvainen & Valpola, Mean teachers are better role models, NeurIPS 2017 (arXiv:1703.01780)",
    options=(
        EMA_DECAY,
        Option("consistency_weight", "float", 100.0, "Weight of the softmax MSE between student and teacher.",
               min=0, max=1e4),
        Option("rampup", "float", 0.1, "Share of the run over which the consistency weight ramps up (sigmoid).",
               min=0, max=1),
    ),
)
class MeanTeacher(TeacherMethod):
    uses_unlabeled = True

    def __init__(self, model_factory, num_classes: int, *, ema_decay: float, consistency_weight: float, rampup: float):
        super().__init__(model_factory, num_classes, ema_decay=ema_decay)
        self.consistency_weight, self.rampup = consistency_weight, rampup

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        img_u_w, img_u_s = unlabeled["image_weak"], unlabeled["image_strong1"]

        pred_u_teacher = self.teacher_predict(img_u_w)
        loss_x = supervised_loss(self.model.forward_train(img_x), mask_x)
        pred_u_s = self.model(img_u_s)

        inside = ~unlabeled["padding"]
        weight = self.consistency_weight * sigmoid_rampup(step, int(self.rampup * total_steps))
        loss_u = softmax_mse(pred_u_s, pred_u_teacher, inside)
        loss = loss_x + weight * loss_u

        pseudo = PseudoLabels.from_logits(pred_u_teacher, unlabeled["padding"])
        return {"loss": loss, "loss_x": loss_x.detach(), "loss_u": loss_u.detach(),
                **pseudo_label_diagnostics(pseudo.label, pseudo.inside, unlabeled)}
