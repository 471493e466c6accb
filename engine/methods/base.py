"""The interface every semi-supervised method implements, whatever its family.

A method is an ``nn.Module`` that owns every network it trains (student, EMA teacher,
second student, discriminator, auxiliary decoders), so ``state_dict()`` is the whole
checkpoint and ``.to(device)`` moves everything. The trainer owns the loop, the
optimiser of ``optimizer_parameters()``, AMP, logging and checkpoints; a method owns
only what happens inside one step, which is why a new method costs one file.

Batches (built by ``engine.data.loaders``), all tensors on the run's device:

* labelled: ``image`` (B, 3, H, W) float, ``mask`` (B, H, W) long, 255 = ignore.
* unlabelled: ``image_weak``, ``image_strong1``, ``image_strong2`` (B, 3, H, W), sharing
  one geometry; ``cutmix_box1``/``cutmix_box2`` (B, H, W) 0/1 boxes; ``padding`` (B, H, W)
  bool, True outside the image; ``hidden_mask`` (B, H, W) long, the ground truth hidden
  by the label budget (255 where unknown) - for diagnostics only, never for a loss.

``training_step`` returns a dict of named scalars: ``loss`` (the tensor the trainer
back-propagates) plus any named loss terms and diagnostics (``pseudo_label_coverage``,
``pseudo_label_accuracy``), all of which become curves on the experiment page.
``engine.methods.common`` holds the pieces methods share (EMA, ramp-ups, pseudo-labels,
mixing), ``engine.methods.teacher`` the EMA teacher's lifecycle (``TeacherMethod``) and
``engine.methods.diagnostics`` the two pseudo-label curves.

A method that steps an optimiser of its own inside ``training_step`` (the adversarial
discriminator) keeps that optimiser's state in ``get_extra_state``/``set_extra_state``,
so ``state_dict()`` stays the whole checkpoint and a run resumes exactly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from engine.data.masks import IGNORE_INDEX
from engine.models.base import SegmentationModel


def supervised_loss(output: dict, mask: torch.Tensor, aux_weight: float = 0.4) -> torch.Tensor:
    """Cross-entropy on the main logits, plus the auxiliary head's (PSPNet's 0.4) when present."""
    loss = F.cross_entropy(output["out"], mask, ignore_index=IGNORE_INDEX)
    if output.get("aux") is not None:
        loss = loss + aux_weight * F.cross_entropy(output["aux"], mask, ignore_index=IGNORE_INDEX)
    return loss


class Method(nn.Module):
    #: The trainer builds an unlabelled loader only for methods that read it.
    uses_unlabeled: bool = False

    def __init__(self, model_factory: Callable[[], SegmentationModel], num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.model = model_factory()

    def training_step(self, labeled: dict, unlabeled: dict | None, step: int,
                      total_steps: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def optimizer_parameters(self) -> Iterable[nn.Parameter]:
        """What the trainer's optimiser updates (a teacher updated by EMA is left out)."""
        return self.model.parameters()

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Hook after each optimiser step (EMA teachers update here)."""

    def eval_model(self) -> nn.Module:
        """The network evaluated and exported: the student unless the paper says otherwise."""
        return self.model
