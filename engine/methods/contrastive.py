"""`contrastive`: ReCo's pixel-level regional contrast on top of a ClassMix mean teacher.

Liu, Zhi, Johns & Davison, "Bootstrapping semantic segmentation with regional
contrast", ICLR 2022, arXiv:2104.04465, github.com/lorenmt/reco (``train_semisup.py``,
``module_list.py``). This is ReCo, not U2PL: hard queries are sampled per class among the
pixels the network is not yet sure of, the positive key is the class prototype (mean
representation), and negative keys are pixels of the other classes, drawn with
probabilities from the prototypes' similarity (ReCo's "semantic class relation graph").

Defaults and their source (``train_semisup.py`` arguments): ``weak_threshold`` 0.7
(unlabelled pixels that may take part), ``strong_threshold`` 0.97 (queries are pixels
below it; also the unsupervised loss weight: the per-image share of pixels above it,
``compute_unsupervised_loss``), ``temp`` 0.5, ``num_queries`` 256, ``num_negatives`` 512,
``output_dim`` 256, EMA teacher decay 0.99, ClassMix as the mixing (``--apply_aug
classmix``, ReCo's main setting), loss ``sup + unsup + reco`` (``contrastive_weight`` 1).
The EMA teacher is evaluated, as in ``train_semisup.py``.

Adaptation: ReCo's representation head reads DeepLabv3+'s decoder features at stride 4.
The SegmentationModel contract exposes the encoder feature list (what the decoder reads),
so the head reads every feature map resized to 1/4 of the input and concatenated; its
input width is found by a probe forward of a small image at construction (a lazy module
would leave parameters uninitialised when the trainer builds its optimiser). The head
is two 1x1 convolutions (ReCo's first one is 3x3; 1x1 keeps the wide concatenation cheap).
Negative keys are drawn per pixel with ``torch.multinomial`` (class probability divided
by the class's pixel count), the same distribution as ReCo's two-stage sampling.
"""
from __future__ import annotations

from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn

from engine.data.masks import IGNORE_INDEX
from engine.methods.base import supervised_loss
from engine.methods.common import PseudoLabels, classmix_masks, mix, roll_batch, weighted_cross_entropy
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.methods.teacher import EMA_DECAY, TeacherMethod
from engine.models.base import SegmentationModel, predicted_classes
from engine.models.resize import bilinear_resize
from engine.options import Option

REPRESENTATION_STRIDE = 4
PROBE_SIZE = 64
HEAD_WIDTH = 256


def probe_channels(model: SegmentationModel) -> int:
    """Total channels of the encoder's feature list, from one forward of a small image."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        features = model.encoder(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
    model.train(was_training)
    return sum(f.shape[1] for f in features)


def regional_contrast(rep: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, strong_threshold: float,
                      temperature: float, num_queries: int, num_negatives: int) -> torch.Tensor:
    """ReCo loss. rep (N, D, h, w); labels (N, h, w), 255 = not taking part; probs (N, K, h, w).

    Three host reads per step (the pixels taking part, the classes, each class's count of hard
    queries), not three per class: the draws ``randint(count)`` need each count on the host. A
    query's pixel is found from the running count of hard pixels, without indexing by a mask.
    """
    rep = rep.permute(0, 2, 3, 1).flatten(0, 2)
    labels, probs = labels.flatten(), probs.permute(0, 2, 3, 1).flatten(0, 2)
    taking_part = (labels != IGNORE_INDEX).nonzero()[:, 0]
    rep, labels, probs = rep[taking_part], labels[taking_part], probs[taking_part]
    classes = labels.unique()
    if len(classes) < 2:  # no negative class in this batch
        return rep.sum() * 0
    with torch.no_grad():
        members = labels[None] == classes[:, None]  # (C, P)
        counts = members.sum(1)
        prototypes = F.normalize((members.float() @ rep.float()) / counts[:, None], dim=1).to(rep.dtype)  # (C, D)
        keys = F.normalize(rep.detach(), dim=1)  # unit vectors once, not per sampled copy
        hard = members & (probs[:, classes].T < strong_threshold)  # (C, P) queries: pixels not yet sure of
        seen_hard = hard.cumsum(1)  # the k-th hard pixel of class i is where seen_hard[i] first reaches k + 1
        pixel_class = predicted_classes(members.float(), 0)
        itself = torch.eye(len(classes), dtype=torch.bool, device=rep.device)  # a class is not its own negative
    loss = rep.sum() * 0
    for i, hard_count in enumerate(hard.sum(1).tolist()):
        if not hard_count:  # every pixel of the class is already easy
            continue
        drawn = torch.randint(hard_count, (num_queries,), device=rep.device)
        queries = F.normalize(rep[torch.searchsorted(seen_hard[i], drawn + 1)], dim=1)
        with torch.no_grad():
            similarity = prototypes[i:i + 1] @ prototypes.T / temperature
            class_prob = similarity[0].masked_fill(itself[i], float("-inf")).softmax(0)
            pixel_weight = (class_prob / counts)[pixel_class]
            sampled = torch.multinomial(pixel_weight, num_queries * num_negatives, replacement=True)
        # Cosine similarities of unit vectors: the positive key (prototype) first, then the negatives.
        # Each query meets every key in one matmul and its sampled negatives are read from that:
        # far cheaper than gathering num_queries x num_negatives copies of D-dim keys.
        negatives = (queries @ keys.T).gather(1, sampled.view(num_queries, num_negatives))
        logits = torch.cat((queries @ prototypes[i:i + 1].T, negatives), dim=1)
        loss = loss + F.cross_entropy(logits / temperature,
                                      torch.zeros(num_queries, dtype=torch.long, device=rep.device))
    return loss / len(classes)


@register_method(
    "contrastive",
    family="contrastive",
    paper="Liu et al., Bootstrapping semantic segmentation with regional contrast (ReCo), ICLR 2022 (arXiv:2104.04465)",
    options=(
        EMA_DECAY,
        Option("weak_threshold", "float", 0.7,
               "Teacher confidence above which an unlabelled pixel takes part in the contrast.", min=0, max=1),
        Option("strong_threshold", "float", 0.97,
               "Confidence below which a pixel is a hard query; also the pseudo-label weight's threshold.",
               min=0, max=1),
        Option("temperature", "float", 0.5, "Temperature of the contrastive softmax.", min=0.01, max=10),
        Option("num_queries", "int", 256, "Hard queries sampled per class.", min=1, max=4096),
        Option("num_negatives", "int", 512, "Negative keys per query.", min=1, max=4096),
        Option("output_dim", "int", 256, "Width of the projected representation.", min=8, max=1024),
        Option("contrastive_weight", "float", 1.0, "Weight of the regional contrastive loss.", min=0, max=100),
    ),
)
class RegionalContrast(TeacherMethod):
    uses_unlabeled = True

    def __init__(self, model_factory, num_classes: int, *, ema_decay: float, weak_threshold: float,
                 strong_threshold: float, temperature: float, num_queries: int, num_negatives: int, output_dim: int,
                 contrastive_weight: float):
        super().__init__(model_factory, num_classes, ema_decay=ema_decay)
        self.projection = nn.Sequential(
            nn.Conv2d(probe_channels(self.model), HEAD_WIDTH, 1, bias=False), nn.BatchNorm2d(HEAD_WIDTH),
            nn.ReLU(inplace=True),
            nn.Conv2d(HEAD_WIDTH, output_dim, 1),
        )
        self.weak_threshold, self.strong_threshold = weak_threshold, strong_threshold
        self.temperature, self.num_queries, self.num_negatives = temperature, num_queries, num_negatives
        self.contrastive_weight = contrastive_weight

    def representation(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """(B, output_dim, H/4, W/4) projection of every encoder feature map."""
        target = (-(-size[0] // REPRESENTATION_STRIDE), -(-size[1] // REPRESENTATION_STRIDE))
        stacked = torch.cat([bilinear_resize(f, target) for f in features], dim=1)
        return self.projection(stacked)

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        img_u_w, img_u_s = unlabeled["image_weak"], unlabeled["image_strong1"]
        size = img_x.shape[-2:]

        pseudo = PseudoLabels.from_logits(self.teacher_predict(img_u_w), unlabeled["padding"])
        class_mask = classmix_masks(pseudo.label, pseudo.inside, self.num_classes)
        img_u_mixed = mix(roll_batch(img_u_s), img_u_s, class_mask)
        pseudo_mixed = pseudo.rolled().mixed(pseudo, class_mask)

        output_x, output_u = self.model.forward_train(img_x), self.model.forward_train(img_u_mixed)
        loss_x = supervised_loss(output_x, mask_x)
        weight_u = pseudo_mixed.confident_fraction(self.strong_threshold, per_image=True)
        loss_u = weighted_cross_entropy(output_u["out"], pseudo_mixed, weight_u)

        rep = torch.cat((self.representation(output_x["features"], size),
                         self.representation(output_u["features"], size)))
        labels = torch.cat((mask_x, pseudo_mixed.targets(self.weak_threshold)))
        labels = F.interpolate(labels[:, None].float(), size=rep.shape[-2:], mode="nearest")[:, 0].long()
        logits = torch.cat((output_x["out"], output_u["out"])).detach()
        probs = F.interpolate(logits, size=rep.shape[-2:], mode="bilinear", align_corners=False).softmax(1)
        loss_contrast = regional_contrast(rep, labels, probs, self.strong_threshold, self.temperature,
                                          self.num_queries, self.num_negatives)
        loss = loss_x + loss_u + self.contrastive_weight * loss_contrast

        return {"loss": loss, "loss_x": loss_x.detach(), "loss_u": loss_u.detach(),
                "loss_contrast": loss_contrast.detach(),
                **pseudo_label_diagnostics(pseudo.label, pseudo.confident(self.strong_threshold), unlabeled)}

    def optimizer_parameters(self):
        return chain(self.model.parameters(), self.projection.parameters())
