"""The EMA teacher's lifecycle, written once for the methods built on a mean teacher.

Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017
(arXiv:1703.01780): the teacher is a frozen copy of the student (``common.make_teacher``),
moved towards it by an exponential moving average after every optimiser step
(``common.ema_update``), and it predicts in eval mode (``common.predict``). Mean Teacher,
French et al.'s CutMix and ReCo evaluate the teacher; ClassMix evaluates the student
(``evaluates_teacher``). A method subclasses ``TeacherMethod`` and writes only its step.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.methods.base import Method
from engine.methods.common import ema_update, make_teacher, predict
from engine.options import Option

#: The teacher's decay: 0.99 in TorchSemiSeg (``C.ema_decay``), French et al. (``teacher_alpha``),
#: ClassMix's ``trainSSL.py`` and ReCo's ``train_semisup.py``.
EMA_DECAY = Option("ema_decay", "float", 0.99, "Decay of the teacher's exponential moving average of the student.",
                   min=0, max=0.99999)


class TeacherMethod(Method):
    """A method whose student is followed by an EMA teacher (``self.teacher``)."""

    #: The network evaluated and exported: the teacher, unless the paper evaluates the student.
    evaluates_teacher: bool = True

    def __init__(self, model_factory, num_classes: int, *, ema_decay: float):
        super().__init__(model_factory, num_classes)
        self.teacher = make_teacher(self.model)
        self.ema_decay = ema_decay

    def teacher_predict(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's logits of ``images``, in eval mode and without gradients."""
        return predict(self.teacher, images)

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        ema_update(self.teacher, self.model, self.ema_decay)

    def eval_model(self) -> nn.Module:
        return self.teacher if self.evaluates_teacher else self.model
