"""`adversarial`: a fully convolutional discriminator judges class-probability maps.

Hung, Tsai, Liou, Lin & Yang, "Adversarial learning for semi-supervised semantic
segmentation", BMVC 2018, arXiv:1802.07934, github.com/hfslyc/AdvSemiSeg (``train.py``,
``model/discriminator.py``).

Defaults and their source: ``lambda_adv_pred`` 0.01 (the paper and the README's
command; ``train.py``'s constant is 0.1), ``lambda_semi`` 0.1, ``lambda_semi_adv``
0.001, ``mask_T`` 0.2 -> ``trust_threshold``, ``semi_start`` 5000 of ``num_steps``
20000 -> ``semi_start`` 0.25 of the run, ``learning_rate_D`` 1e-4 with Adam betas
(0.9, 0.99) and the same poly decay; the discriminator is five 4x4 stride-2
convolutions (64, 128, 256, 512, 1 channels) with LeakyReLU 0.2, trained on predictions
(label 0, unlabelled ones included: ``D_remain``) and one-hot ground truth (label 1).

The steps come in ``train.py``'s order. The segmentation network is stepped against the
discriminator as it was at the start of the iteration. Then, in ``after_optimizer_step``,
the discriminator learns from the same, detached predictions. Its loss is built in
``training_step``, from its weights as they were, and backpropagated only after the
trainer has stepped the segmentation network (the trainer only steps
``optimizer_parameters()``). The discriminator's weights are a submodule and its optimiser
state travels in ``get_extra_state``, so both are in the method's ``state_dict`` and a
checkpoint resumes them. With several processes (``engine.distributed``) the discriminator's
gradients are averaged over them before its step, as DDP does for the segmentation network.
With fp16 AMP its step is unscaled: use bf16 or fp32 for this method.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.data.masks import IGNORE_INDEX
from engine.distributed import average_gradients
from engine.methods.base import Method, supervised_loss
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.models.base import predicted_classes, resize_logits
from engine.options import Option

DISCRIMINATOR_WIDTH = 64
LEAKY_SLOPE = 0.2
ADAM_BETAS = (0.9, 0.99)
POLY_POWER = 0.9
REAL, FAKE = 1.0, 0.0


class FCDiscriminator(nn.Module):
    """(B, K, H, W) probabilities -> (B, 1, H, W) logits of "this is ground truth"."""

    def __init__(self, num_classes: int, width: int = DISCRIMINATOR_WIDTH):
        super().__init__()
        widths = [num_classes, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=2, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, probabilities: torch.Tensor) -> torch.Tensor:
        return resize_logits(self.layers(probabilities), probabilities.shape[-2:])


def masked_bce(logits: torch.Tensor, target: float, valid: torch.Tensor) -> torch.Tensor:
    """BCE of (B, 1, H, W) discriminator logits against a constant label, on ``valid`` pixels."""
    loss = F.binary_cross_entropy_with_logits(logits[:, 0], torch.full_like(logits[:, 0], target), reduction="none")
    return (loss * valid).sum() / valid.sum().clamp_min(1)


@register_method(
    "adversarial",
    family="GAN-based",
    paper="Hung et al., Adversarial learning for semi-supervised semantic segmentation, BMVC 2018 (arXiv:1802.07934)",
    options=(
        Option("lambda_adv_pred", "float", 0.01, "Weight of the adversarial loss on labelled predictions.",
               min=0, max=10),
        Option("lambda_semi", "float", 0.1, "Weight of the self-taught loss on trusted unlabelled pixels.",
               min=0, max=10),
        Option("lambda_semi_adv", "float", 0.001, "Weight of the adversarial loss on unlabelled predictions.",
               min=0, max=10),
        Option("trust_threshold", "float", 0.2,
               "Discriminator confidence (mask_T) above which a pixel is pseudo-labelled.", min=0, max=1),
        Option("semi_start", "float", 0.25, "Share of the run before the self-taught loss starts.", min=0, max=1),
        Option("discriminator_lr", "float", 1e-4, "Adam learning rate of the discriminator (poly decay).",
               min=1e-7, max=1),
    ),
)
class Adversarial(Method):
    uses_unlabeled = True

    def __init__(self, model_factory, num_classes: int, *, lambda_adv_pred: float, lambda_semi: float,
                 lambda_semi_adv: float, trust_threshold: float, semi_start: float, discriminator_lr: float):
        super().__init__(model_factory, num_classes)
        self.discriminator = FCDiscriminator(num_classes)
        self.discriminator_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=discriminator_lr,
                                                        betas=ADAM_BETAS)
        self.lambda_adv_pred, self.lambda_semi, self.lambda_semi_adv = lambda_adv_pred, lambda_semi, lambda_semi_adv
        self.trust_threshold, self.semi_start, self.discriminator_lr = trust_threshold, semi_start, discriminator_lr
        self.pending_discriminator_loss: torch.Tensor | None = None  # built by training_step, stepped after it

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        img_u, inside_u = unlabeled["image_weak"], ~unlabeled["padding"]
        labeled_x = mask_x != IGNORE_INDEX

        output_x = self.model.forward_train(img_x)
        pred_x, pred_u = output_x["out"], self.model(img_u)

        self.discriminator.requires_grad_(False)  # the generator's losses must not train D
        d_out_x, d_out_u = self.discriminate(pred_x.softmax(1), pred_u.softmax(1))
        self.discriminator.requires_grad_(True)
        trusted = (d_out_u[:, 0].detach().sigmoid() >= self.trust_threshold) & inside_u
        semi_gt = predicted_classes(pred_u.detach()).masked_fill(~trusted, IGNORE_INDEX)

        loss_seg = supervised_loss(output_x, mask_x)
        loss_adv_pred = masked_bce(d_out_x, REAL, labeled_x)
        loss_semi_adv = masked_bce(d_out_u, REAL, inside_u)
        # The mean over trusted pixels, 0 when none is (no ``if trusted.any()``: it would wait for the device).
        loss_semi = (F.cross_entropy(pred_u, semi_gt, ignore_index=IGNORE_INDEX, reduction="sum")
                     / trusted.sum().clamp_min(1))
        use_semi = float(step >= self.semi_start * total_steps)
        loss = loss_seg + self.lambda_adv_pred * loss_adv_pred + self.lambda_semi_adv * loss_semi_adv \
            + use_semi * self.lambda_semi * loss_semi
        self.pending_discriminator_loss = self.discriminator_loss(pred_x.detach(), pred_u.detach(), mask_x, inside_u)

        return {"loss": loss, "loss_seg": loss_seg.detach(), "loss_adv_pred": loss_adv_pred.detach(),
                "loss_semi": loss_semi.detach(), "loss_semi_adv": loss_semi_adv.detach(),
                "loss_d": self.pending_discriminator_loss.detach(),
                **pseudo_label_diagnostics(semi_gt, trusted, unlabeled)}

    def discriminate(self, *probabilities: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """D's logits of each (B_i, K, H, W) probability map, in one pass: D has no batch statistics,
        so the batched pass gives each map what a pass of its own would, at one launch per layer."""
        return self.discriminator(torch.cat(probabilities)).split([len(p) for p in probabilities])

    def discriminator_loss(self, pred_x, pred_u, mask_x, inside_u) -> torch.Tensor:
        """Predictions (unlabelled ones included) are fake, one-hot ground truth is real; ignore pixels skipped."""
        labeled_x = mask_x != IGNORE_INDEX
        one_hot = F.one_hot(mask_x.masked_fill(~labeled_x, 0), self.num_classes).permute(0, 3, 1, 2).to(pred_x.dtype)
        d_out_fake, d_out_real = self.discriminate(torch.cat((pred_x, pred_u)).softmax(1), one_hot)
        loss_fake = masked_bce(d_out_fake, FAKE, torch.cat((labeled_x, inside_u)))
        loss_real = masked_bce(d_out_real, REAL, labeled_x)
        return (loss_fake + loss_real) / 2

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """One Adam step of D on the loss ``training_step`` built, once the segmentation network has stepped."""
        loss_d, self.pending_discriminator_loss = self.pending_discriminator_loss, None
        if loss_d is None:
            return
        for group in self.discriminator_optimizer.param_groups:
            group["lr"] = self.discriminator_lr * (1 - step / total_steps) ** POLY_POWER
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        loss_d.backward()
        average_gradients(self.discriminator.parameters())  # DDP steps the segmentation network only
        self.discriminator_optimizer.step()

    def get_extra_state(self) -> dict:
        return {"discriminator_optimizer": self.discriminator_optimizer.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])
