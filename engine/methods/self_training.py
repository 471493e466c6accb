"""`self_training`: ST++, supervised teacher -> stability-selected pseudo-labels -> student.

Yang, Zhuo, Qi, Shi & Gao, "ST++: Make self-training work better for semi-supervised
semantic segmentation", CVPR 2022, arXiv:2106.05095, github.com/LiheYoung/ST-PlusPlus
(``train.py``, ``dataset/transform.py``).

ST++'s pipeline, and how it maps onto one iteration-based run:

1. Supervised teacher on the labelled images, saving checkpoints at 1/3, 2/3 and the end
   of its schedule (``train.py``: ``epochs // 3``, ``epochs * 2 // 3``, ``epochs``).
   Here: the first ``teacher_fraction`` (0.4) of the run, with the checkpoints kept in
   memory as submodules (so they are in every checkpoint and a run resumes across stages).
2. Image-level reliability: the mean IoU of each earlier checkpoint's prediction against
   the final one's, and the most stable half of the images is kept (``select_reliable``:
   ``reliable_fraction`` 0.5). Here the ranking is done within each unlabelled batch as it
   arrives, not once over the whole pool (the trainer hands out batches, not the pool).
3. A student, re-initialised, trained on labelled + pseudo-labelled reliable images with
   strong augmentation (colour jitter, grayscale, blur, cutout with p=0.5 whose erased
   pixels are ignored; the loader's strong view and box match ST++'s ranges). The
   pseudo-labels come from the final teacher checkpoint (ST++ uses its best one by
   validation mIoU, which a method cannot see). Labelled and pseudo-labelled images share
   one batch and one cross-entropy, as in ST++'s joint dataset.

Not reproduced: ST++'s second re-training (re-labelling all images with the first
student and training a third network); the student inherits the trainer's optimiser
state and the remaining poly learning-rate schedule rather than a fresh schedule.
The ``stage`` metric is 1 for the teacher and 2 for the student.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from engine.data.masks import IGNORE_INDEX
from engine.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from engine.methods.base import Method, supervised_loss
from engine.methods.common import mix, predict
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.models.base import predicted_classes
from engine.options import Option

TEACHER, STUDENT = 1, 2


def stability(predictions: list[torch.Tensor], num_classes: int) -> torch.Tensor:
    """Per image, the mean over earlier checkpoints of mIoU(prediction_k, final prediction).

    predictions: list of (B, H, W) label maps, the final checkpoint's last. Classes absent
    from both maps are left out of each image's mean (ST++'s ``meanIOU`` nan-mean). Each
    image's confusion matrix against the final map comes from one ``scatter_add_``, not a
    Python loop over the classes (nor ``bincount``, which reads its input's range on the host
    on a GPU).
    """
    final = predictions[-1].flatten(1)
    batch = final.shape[0]
    image = torch.arange(batch, device=final.device)[:, None] * num_classes**2
    scores = []
    for earlier in predictions[:-1]:
        cells = (image + earlier.flatten(1) * num_classes + final).flatten()
        confusion = torch.zeros(batch * num_classes**2, dtype=torch.long, device=final.device)
        confusion = confusion.scatter_add_(0, cells, torch.ones_like(cells)).view(batch, num_classes, num_classes)
        both = confusion.diagonal(dim1=1, dim2=2).float()
        union = (confusion.sum(2) + confusion.sum(1)).float() - both
        iou = both / union.clamp_min(1)
        scores.append(torch.where(union > 0, iou, torch.full_like(iou, float("nan"))).nanmean(1))
    return torch.stack(scores, 1).mean(1)


def random_fill(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Uniform random pixels in [0, 255], normalised like the images (ST++'s cutout values);
    ``mean`` and ``std`` are (1, 3, 1, 1) tensors on the images' device."""
    return (torch.rand_like(images) - mean) / std


@register_method(
    "self_training",
    family="pseudo-labelling",
    paper="Yang et al., ST++: Make self-training work better for semi-supervised semantic segmentation, "
          "CVPR 2022 (arXiv:2106.05095)",
    options=(
        Option("teacher_fraction", "float", 0.4, "Share of the run spent training the supervised teacher.",
               min=0.05, max=0.95),
        Option("checkpoints", "int", 3, "Teacher checkpoints compared for stability (the last one labels).",
               min=2, max=10),
        Option("reliable_fraction", "float", 0.5, "Share of each unlabelled batch kept, most stable first.",
               min=0.05, max=1),
    ),
)
class SelfTraining(Method):
    uses_unlabeled = True
    fill_mean: torch.Tensor  # buffers: ImageNet's mean and sd, the cutout's fill
    fill_std: torch.Tensor

    def __init__(self, model_factory, num_classes: int, *, teacher_fraction: float, checkpoints: int,
                 reliable_fraction: float):
        super().__init__(model_factory, num_classes)
        self.teacher_fraction, self.reliable_fraction = teacher_fraction, reliable_fraction
        self.checkpoints = nn.ModuleList(copy.deepcopy(self.model).requires_grad_(False) for _ in range(checkpoints))
        # The student restarts from the same initialisation as the teacher (ST++ re-initialises).
        self._initial_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        # Moved with the method, so a step copies nothing from the host; not in the checkpoint.
        self.register_buffer("fill_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("fill_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def teacher_steps(self, total_steps: int) -> int:
        return max(1, round(self.teacher_fraction * total_steps))

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        if step < self.teacher_steps(total_steps):
            loss = supervised_loss(self.model.forward_train(img_x), mask_x)
            nothing = torch.zeros((), device=img_x.device)
            return {"loss": loss, "stage": torch.full((), float(TEACHER), device=img_x.device),
                    "pseudo_label_coverage": nothing}

        img_u_w, img_u_s, padding, box = (unlabeled[k]
                                          for k in ("image_weak", "image_strong1", "padding", "cutmix_box1"))
        predictions = [predicted_classes(predict(checkpoint, img_u_w)) for checkpoint in self.checkpoints]
        reliable = stability(predictions, self.num_classes).argsort(descending=True)
        reliable = reliable[: max(1, round(self.reliable_fraction * len(reliable)))]
        pseudo_label = predictions[-1].masked_fill(padding, IGNORE_INDEX)
        # Cutout; its pixels carry no label.
        img_u_s = mix(img_u_s, random_fill(img_u_s, self.fill_mean, self.fill_std), box)
        mask_u = pseudo_label.masked_fill(box.bool(), IGNORE_INDEX)

        output = self.model.forward_train(torch.cat((img_x, img_u_s[reliable])))
        loss = supervised_loss(output, torch.cat((mask_x, mask_u[reliable])))

        selected = torch.zeros(len(padding), dtype=torch.bool, device=padding.device)
        selected[reliable] = True
        return {"loss": loss, "stage": torch.full((), float(STUDENT), device=img_x.device),
                **pseudo_label_diagnostics(predictions[-1], selected[:, None, None].expand_as(padding), unlabeled)}

    @torch.no_grad()
    def after_optimizer_step(self, step, total_steps):
        teacher_steps = self.teacher_steps(total_steps)
        count = len(self.checkpoints)
        for k, checkpoint in enumerate(self.checkpoints, start=1):
            if step + 1 == max(1, teacher_steps * k // count):
                checkpoint.load_state_dict(self.model.state_dict())
        if step + 1 == teacher_steps:
            self.model.load_state_dict(self._initial_state)
