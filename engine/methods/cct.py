"""`cct`: cross-consistency between the main decoder and decoders fed perturbed features.

Ouali, Hudelot & Tami, "Semi-supervised semantic segmentation with cross-consistency
training", CVPR 2020, arXiv:2003.09005, github.com/yassouali/CCT (``configs/config.json``,
``models/decoders.py``, ``models/model.py``).

Defaults and their source (``config.json``): ``unsupervised_w`` 30 ->
``consistency_weight``, ``ramp_up`` 0.1 of training (sigmoid ramp-up), ``un_loss`` MSE
of softmax outputs against the main decoder's detached prediction on the same
unlabelled image; the perturbations and their parameters: ``drop_rate`` 0.5 spatial
dropout, feature drop with an attention threshold drawn in [0.6, 0.9) of the maximum,
``uniform_range`` 0.3 multiplicative feature noise, guided cutout erasing ``erase`` 0.4
of each predicted object's box, object and context masking from the main prediction,
VAT with ``xi`` 1e-6 and ``eps`` 2.0.

Adaptation, stated plainly: CCT's auxiliary decoders are light (a 1x1 convolution and
pixel shuffles after a shared PSP module) and the config uses 30 of them (drop 6,
feature_drop 6, feature_noise 6, cutout 6, vat 2, context 2, object 2). Here every
auxiliary decoder is a copy of the architecture's own decoder (freshly initialised:
``reset_parameters`` on each layer), fed the perturbed encoder feature list, so the
defaults keep one decoder per perturbation and VAT off (it costs two extra decoder
passes); each count is an option for CCT's ensemble. Guided cutout erases a box inside
each predicted class's bounding box (CCT uses OpenCV contours of the connected regions),
and "object" means any non-background (class > 0) prediction, as in CCT. The auxiliary
decoders belong to this method and are trained by the trainer's optimiser.
"""
from __future__ import annotations

import copy
import random
from collections.abc import Callable
from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn

from engine.methods.base import Method, supervised_loss
from engine.methods.common import PseudoLabels, sigmoid_rampup, softmax_mse
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.models.base import predicted_classes, resize_logits
from engine.options import Option

Features = list[torch.Tensor]

DROP_RATE = 0.5
FEATURE_DROP_RANGE = (0.6, 0.9)
NOISE_RANGE = 0.3
ERASE = 0.4
VAT_XI, VAT_EPS = 1e-6, 2.0


def resized(mask: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
    """(B, H, W) 0/1 mask -> (B, 1, h, w) at the feature's resolution."""
    return F.interpolate(mask[:, None].float(), size=feature.shape[-2:], mode="nearest").to(feature.dtype)


def spatial_dropout(features: Features, prediction: torch.Tensor) -> Features:
    return [F.dropout2d(f, DROP_RATE, training=True) for f in features]


def feature_drop(features: Features, prediction: torch.Tensor) -> Features:
    """Zero the most activated regions: channel-mean attention above a random share of its max."""
    dropped = []
    for f in features:
        attention = f.mean(1, keepdim=True)
        top = attention.flatten(1).max(1).values.view(-1, 1, 1, 1)
        dropped.append(f * (attention < top * random.uniform(*FEATURE_DROP_RANGE)))
    return dropped


def feature_noise(features: Features, prediction: torch.Tensor) -> Features:
    """x + x * noise, one uniform noise tensor shared by the batch (as CCT)."""
    return [f + f * torch.empty_like(f[:1]).uniform_(-NOISE_RANGE, NOISE_RANGE) for f in features]


def object_masking(features: Features, prediction: torch.Tensor) -> Features:
    background = (predicted_classes(prediction) == 0).float()
    return [f * resized(background, f) for f in features]


def context_masking(features: Features, prediction: torch.Tensor) -> Features:
    objects = (predicted_classes(prediction) > 0).float()
    return [f * resized(objects, f) for f in features]


def class_boxes(labels: torch.Tensor, num_classes: int) -> list[list[tuple[int, int, int, int] | None]]:
    """Per image and class, the (top, bottom, left, right) bounds of the class's pixels in a (B, H, W)
    label map, None where the class is absent: found for every class at once (``scatter_reduce``) and
    read on the host once, where a ``nonzero`` and four reads per class and image waited for the device."""
    batch, height, width = labels.shape
    cell = (torch.arange(batch, device=labels.device)[:, None, None] * num_classes + labels).flatten()
    rows = torch.arange(height, device=labels.device)[None, :, None].expand_as(labels).flatten()
    cols = torch.arange(width, device=labels.device)[None, None, :].expand_as(labels).flatten()
    bounds = []
    for coordinate, side in ((rows, height), (cols, width)):
        bounds.append(torch.full((batch * num_classes,), side, device=labels.device).scatter_reduce(
            0, cell, coordinate, "amin"))
        bounds.append(torch.full((batch * num_classes,), -1, device=labels.device).scatter_reduce(
            0, cell, coordinate, "amax"))
    top, bottom, left, right = torch.stack(bounds).view(4, batch, num_classes).tolist()
    return [[(top[i][c], bottom[i][c], left[i][c], right[i][c]) if bottom[i][c] >= 0 else None
             for c in range(num_classes)] for i in range(batch)]


def guided_cutout(features: Features, prediction: torch.Tensor) -> Features:
    """Erase ``ERASE`` of the height and width of each predicted object class's bounding box."""
    labels = predicted_classes(prediction)
    keep = torch.ones_like(labels, dtype=torch.float)
    for i, boxes in enumerate(class_boxes(labels, prediction.shape[1])):
        for box in boxes[1:]:  # class 0 is the background
            if box is None:
                continue
            top, bottom, left, right = box
            height, width = bottom - top, right - left
            dy, dx = random.randint(0, int(height * (1 - ERASE))), random.randint(0, int(width * (1 - ERASE)))
            keep[i, top + dy: top + dy + int(height * ERASE), left + dx: left + dx + int(width * ERASE)] = 0
    return [f * resized(keep, f) for f in features]


PERTURBATIONS: dict[str, Callable[[Features, torch.Tensor], Features]] = {
    "dropout": spatial_dropout, "feature_drop": feature_drop, "feature_noise": feature_noise,
    "object_masking": object_masking, "context_masking": context_masking, "guided_cutout": guided_cutout,
}


def _l2_normalize(d: torch.Tensor) -> torch.Tensor:
    return d / (d.flatten(1).norm(dim=1).view(-1, *([1] * (d.dim() - 1))) + 1e-8)


def vat_features(features: Features, decoder: nn.Module, prediction: torch.Tensor) -> Features:
    """Virtual adversarial perturbation of every feature map w.r.t. the decoder's output."""
    features = [f.detach() for f in features]
    target = prediction.detach().softmax(1)
    directions = [_l2_normalize(torch.rand_like(f) - 0.5).requires_grad_() for f in features]
    with torch.enable_grad():
        logits = decoder([f + VAT_XI * d for f, d in zip(features, directions, strict=True)])
        distance = F.kl_div(resize_logits(logits, target.shape[-2:]).log_softmax(1), target, reduction="batchmean")
        gradients = torch.autograd.grad(distance, directions)
    return [f + VAT_EPS * _l2_normalize(g) for f, g in zip(features, gradients, strict=True)]


def fresh_copy(decoder: nn.Module) -> nn.Module:
    copied = copy.deepcopy(decoder)
    for module in copied.modules():
        reset_parameters = getattr(module, "reset_parameters", None)
        if reset_parameters is not None:
            reset_parameters()
    return copied


@register_method(
    "cct",
    family="consistency regularisation",
    paper="Ouali et al., Semi-supervised semantic segmentation with cross-consistency training, "
          "CVPR 2020 (arXiv:2003.09005)",
    options=(
        Option("consistency_weight", "float", 30.0,
               "Weight of the auxiliary decoders' consistency loss (unsupervised_w).", min=0, max=1e4),
        Option("rampup", "float", 0.1, "Share of the run over which the consistency weight ramps up (sigmoid).",
               min=0, max=1),
        *(Option(name, "int", 1, f"Auxiliary decoders fed {name.replace('_', ' ')} features.", min=0, max=8)
          for name in PERTURBATIONS),
        Option("vat", "int", 0, "Auxiliary decoders fed virtual-adversarial features (CCT uses 2).", min=0, max=8),
    ),
)
class CCT(Method):
    uses_unlabeled = True

    def __init__(self, model_factory, num_classes: int, *, consistency_weight: float, rampup: float, dropout: int,
                 feature_drop: int, feature_noise: int, object_masking: int, context_masking: int, guided_cutout: int,
                 vat: int):
        super().__init__(model_factory, num_classes)
        self.consistency_weight, self.rampup = consistency_weight, rampup
        counts = {"dropout": dropout, "feature_drop": feature_drop, "feature_noise": feature_noise,
                  "object_masking": object_masking, "context_masking": context_masking, "guided_cutout": guided_cutout,
                  "vat": vat}
        self.perturbations = [name for name, count in counts.items() for _ in range(count)]
        self.aux_decoders = nn.ModuleList(fresh_copy(self.model.decoder) for _ in self.perturbations)

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        img_u = unlabeled["image_weak"]
        size, inside = img_u.shape[-2:], ~unlabeled["padding"]

        loss_x = supervised_loss(self.model.forward_train(img_x), mask_x)
        features_u = self.model.encoder(img_u)
        pred_u = self.model.decoder(features_u)  # main decoder, at its own stride
        target = F.interpolate(pred_u.detach(), size=size, mode="bilinear", align_corners=False)
        losses_aux = []
        for name, decoder in zip(self.perturbations, self.aux_decoders, strict=True):
            perturbed = (vat_features(features_u, decoder, pred_u) if name == "vat"
                         else PERTURBATIONS[name](features_u, pred_u.detach()))
            losses_aux.append(softmax_mse(self.model.decode(perturbed, size, decoder), target, inside))
        loss_u = torch.stack(losses_aux).mean() if losses_aux else target.sum() * 0
        weight = self.consistency_weight * sigmoid_rampup(step, int(self.rampup * total_steps))
        loss = loss_x + weight * loss_u

        pseudo = PseudoLabels.from_logits(target, unlabeled["padding"])
        return {"loss": loss, "loss_x": loss_x.detach(), "loss_u": loss_u.detach(),
                **pseudo_label_diagnostics(pseudo.label, pseudo.inside, unlabeled)}

    def optimizer_parameters(self):
        return chain(self.model.parameters(), self.aux_decoders.parameters())
