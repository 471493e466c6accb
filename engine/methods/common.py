"""Building blocks shared by the semi-supervised methods, written once.

EMA teachers, ramp-ups, pseudo-labels with their confidence and padding, the two
pseudo-label losses of the literature (UniMatch's thresholded cross-entropy and
ClassMix's confidence-weighted one), and CutMix / ClassMix mixing of images and targets.
Every method file composes these, so the formulas live in one place and are tested once.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.data.masks import IGNORE_INDEX

#: Steepness of the sigmoid ramp-up exp(-5 (1 - t)^2) of Laine & Aila / mean-teacher.
RAMPUP_STEEPNESS = 5.0


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student`` that ``ema_update`` moves towards it."""
    teacher = copy.deepcopy(student)
    teacher.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student; buffers (BN statistics) are copied.

    Copying the running statistics (as U2PL and UniMatch's successors do) keeps the
    teacher's BatchNorm consistent with the weights it averages. One multi-tensor call per
    kind (timm's ``ModelEmaV3`` does the same) instead of a lerp per tensor: on a GPU that is
    a few launches instead of one per parameter, with the same result.
    """
    teacher_parameters: list[torch.Tensor] = list(teacher.parameters())
    student_parameters: list[torch.Tensor] = list(student.parameters())
    if len(teacher_parameters) != len(student_parameters):
        raise ValueError(f"the teacher has {len(teacher_parameters)} parameters but the student "
                         f"{len(student_parameters)}: it must be a copy of the student (make_teacher)")
    torch._foreach_lerp_(teacher_parameters, [p.detach() for p in student_parameters], 1.0 - decay)
    teacher_buffers, student_buffers = list(teacher.buffers()), list(student.buffers())
    if teacher_buffers:
        torch._foreach_copy_(teacher_buffers, student_buffers)


def sigmoid_rampup(step: int, length: int) -> float:
    """exp(-5 (1 - t)^2) for t = step / length in [0, 1]; 1 when there is no ramp-up."""
    if length <= 0:
        return 1.0
    t = min(max(step / length, 0.0), 1.0)
    return math.exp(-RAMPUP_STEEPNESS * (1.0 - t) ** 2)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Logits of a teacher or checkpoint in eval mode (BN running statistics, no dropout)."""
    was_training = model.training
    model.eval()
    logits = model(images)
    model.train(was_training)
    return logits


@dataclass
class PseudoLabels:
    """Hard pseudo-labels of a (detached) prediction, with their confidence.

    ``inside`` is False on padding pixels (outside the image): they never carry a loss.
    """

    label: torch.Tensor  # (B, H, W) long
    confidence: torch.Tensor  # (B, H, W) float, the max class probability
    inside: torch.Tensor  # (B, H, W) bool
    probabilities: torch.Tensor | None = None  # (B, C, H, W) float, where a soft target needs them

    @classmethod
    def from_logits(cls, logits: torch.Tensor, padding: torch.Tensor) -> PseudoLabels:
        return cls.from_probabilities(logits.detach().float().softmax(1), padding)

    @classmethod
    def from_probabilities(cls, probabilities: torch.Tensor, padding: torch.Tensor,
                           keep_probabilities: bool = False) -> PseudoLabels:
        """``keep_probabilities`` carries the (B, C, H, W) map through ``mixed``/``rolled``, for soft
        targets only: every hard-label method would otherwise mix C channels per pixel for nothing."""
        confidence, label = probabilities.detach().max(1)
        return cls(label, confidence, ~padding, probabilities.detach() if keep_probabilities else None)

    def confident(self, threshold: float | torch.Tensor) -> torch.Tensor:
        """Inside pixels at or above ``threshold``: one float, or a (C,) tensor read at each pixel's label."""
        if isinstance(threshold, torch.Tensor):
            threshold = threshold[self.label]
        return (self.confidence >= threshold) & self.inside

    def targets(self, threshold: float | torch.Tensor = 0.0) -> torch.Tensor:
        """The labels as a cross-entropy target: ignore where not confident or outside."""
        return self.label.masked_fill(~self.confident(threshold), IGNORE_INDEX)

    def confident_fraction(self, threshold: float | torch.Tensor, per_image: bool = False) -> torch.Tensor:
        """Share of inside pixels above ``threshold``: ClassMix/ReCo/CutMix's loss weight."""
        dims = (1, 2) if per_image else (0, 1, 2)
        count = self.confident(threshold).sum(dims).float()
        return count / self.inside.sum(dims).clamp_min(1)

    def mixed(self, other: PseudoLabels, mask: torch.Tensor) -> PseudoLabels:
        """Take ``other`` where ``mask`` is 1 (the same mask as the mixed images)."""
        # mypy cannot tell that only the last field (probabilities) may be None.
        return PseudoLabels(*(None if a is None else mix(a, b, mask)  # type: ignore[arg-type]
                              for a, b in zip(self.fields(), other.fields(), strict=True)))

    def rolled(self) -> PseudoLabels:
        return PseudoLabels(*(None if a is None else roll_batch(a) for a in self.fields()))  # type: ignore[arg-type]

    def fields(self) -> tuple:
        return self.label, self.confidence, self.inside, self.probabilities


def ground_truth_labels(mask: torch.Tensor, num_classes: int | None = None) -> PseudoLabels:
    """A labelled mask as pseudo-labels: confidence 1, ignored pixels outside; with
    ``num_classes``, one-hot probabilities too (for a soft target)."""
    inside = mask != IGNORE_INDEX
    label = mask.masked_fill(~inside, 0)
    probabilities = None
    if num_classes is not None:
        probabilities = F.one_hot(label, num_classes).permute(0, 3, 1, 2).float()
    return PseudoLabels(label, torch.ones_like(mask, dtype=torch.float), inside, probabilities)


def confident_cross_entropy(logits: torch.Tensor, pseudo: PseudoLabels,
                            threshold: float | torch.Tensor) -> torch.Tensor:
    """UniMatch's unlabelled loss: CE on confident pixels, averaged over all inside pixels.

    Dividing by every inside pixel (not only the confident ones) lets the loss grow with
    the teacher's confidence instead of being dominated by a few early confident pixels.
    """
    loss = F.cross_entropy(logits, pseudo.label, reduction="none")
    return (loss * pseudo.confident(threshold)).sum() / pseudo.inside.sum().clamp_min(1)


def soft_cross_entropy(logits: torch.Tensor, target_probabilities: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to soft targets, averaged over inside pixels (UDA's consistency term).

    Its gradient is ``softmax(logits) - target``, the KL divergence's, so a target that
    is unsure (0.6 background, 0.4 tops) pulls towards unsure rather than towards
    background as its argmax would.
    """
    loss = -(target_probabilities.detach() * logits.float().log_softmax(1)).sum(1)
    return (loss * inside).sum() / inside.sum().clamp_min(1)


def weighted_cross_entropy(logits: torch.Tensor, pseudo: PseudoLabels, weight: torch.Tensor) -> torch.Tensor:
    """CE on every inside pixel, scaled by ``weight`` (a scalar or one value per image)."""
    loss = F.cross_entropy(logits, pseudo.label, reduction="none")
    weight = weight.view(-1, 1, 1) if weight.dim() else weight
    return (loss * weight * pseudo.inside).sum() / pseudo.inside.sum().clamp_min(1)


def softmax_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of class probabilities over inside pixels (mean-teacher, CCT)."""
    return probability_mse(student_logits, teacher_logits.detach().softmax(1), inside)


def probability_mse(logits: torch.Tensor, target_probabilities: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Mean over classes and inside pixels of (softmax(logits) - target)^2.

    Its gradient on the logits is the cross-entropy's ``q - p`` passed through the softmax
    Jacobian, so it fades where the student is already confident: a weak pull.
    """
    squared = (logits.softmax(1) - target_probabilities.detach()).pow(2).mean(1)
    return (squared * inside).sum() / inside.sum().clamp_min(1)


def labeled_part(output: dict, count: int) -> dict:
    """The first ``count`` images of a ``forward_train`` output (labelled + unlabelled batches)."""
    aux = output.get("aux")
    return {"out": output["out"][:count], "aux": aux[:count] if aux is not None else None}


def roll_batch(x: torch.Tensor) -> torch.Tensor:
    """Pair each image with the previous one in the batch: the mixing partner.

    The official codes draw the partner from a second unlabelled loader; rolling the
    batch gives the same distribution of pairs without a second loader or forward pass.
    """
    return x.roll(1, dims=0)


def mix(target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``source`` where ``mask`` (B, H, W) is 1, ``target`` elsewhere; images or label maps."""
    keep = mask.bool()
    if target.dim() == 4:
        keep = keep[:, None]
    return torch.where(keep, source, target)


def box_masks(batch: int, height: int, width: int, area: float | tuple[float, float], device: torch.device,
              boxes: int = 1) -> torch.Tensor:
    """Per image, ``boxes`` rectangles covering ``area`` of it (a share, or a (low, high) range
    drawn per box), random aspect ratio and position; where boxes overlap they cancel.

    French et al.'s CutMix mask generator (``BoxMaskGenerator`` of cutmix-semisup-seg): the
    aspect ratio is drawn log-uniformly so that both sides stay within the image, and with
    several boxes each side shrinks by sqrt(1 / boxes) and each box flips the mask inside
    it. One box of 0.5 is their default; CPS + CutMix (TorchSemiSeg) uses 3 boxes of 25-50%.
    """
    low, high = (area, area) if isinstance(area, (int, float)) else area
    masks = torch.zeros(batch, height, width, device=device)
    shrink = math.sqrt(1.0 / boxes)
    for i in range(batch):
        for _ in range(boxes):
            share = low if low == high else low + (high - low) * torch.rand(()).item()
            side_y = math.exp(torch.rand(()).item() * math.log(share))
            side_x = share / side_y
            h, w = max(1, round(side_y * shrink * height)), max(1, round(side_x * shrink * width))
            top = int(torch.randint(0, height - h + 1, ()).item())
            left = int(torch.randint(0, width - w + 1, ()).item())
            masks[i, top:top + h, left:left + w] = 1 - masks[i, top:top + h, left:left + w]
    return masks


def classmix_masks(labels: torch.Tensor, inside: torch.Tensor, num_classes: int) -> torch.Tensor:
    """ClassMix: per image, 1 on the pixels of a random half (rounded up) of its predicted classes.

    The classes present on inside pixels are found for the whole batch in one scatter, and only
    their counts are read on the host, once: ``randperm(count)`` needs each count there (one host
    read per step, where a ``unique`` per image made two).
    """
    batch = labels.shape[0]
    # (B, C + 1): column C collects the pixels outside the image, then is dropped.
    present = torch.zeros(batch, num_classes + 1, dtype=torch.bool, device=labels.device)
    present.scatter_(1, labels.masked_fill(~inside, num_classes).flatten(1), True)
    present = present[:, :num_classes]
    # Per image, its present classes in ascending order first (what ``unique`` returns).
    ordered = torch.argsort((~present).byte(), dim=1, stable=True)
    chosen = torch.zeros_like(present)
    for i, count in enumerate(present.sum(1).tolist()):
        picked = ordered[i, :count][torch.randperm(count, device=labels.device)[: (count + 1) // 2]]
        chosen[i, picked] = True
    return chosen.gather(1, labels.flatten(1)).view_as(labels).float()
