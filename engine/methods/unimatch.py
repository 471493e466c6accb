"""`unimatch`: FixMatch with a feature-perturbation stream and two strong views.

Yang, Qi, Feng, Zhang & Shi, "Revisiting weak-to-strong consistency in semi-supervised
semantic segmentation", CVPR 2023, arXiv:2208.09910, github.com/LiheYoung/UniMatch
(``unimatch.py``, ``configs/pascal.yaml``, ``model/semseg/deeplabv3plus.py``).

Defaults and their source: ``conf_thresh`` 0.95 -> ``confidence_threshold``;
``nn.Dropout2d(0.5)`` on every encoder feature the decoder reads -> ``feature_dropout``, the
perturbed features decoded in one decoder batch with the clean ones (``need_fp``);
the loss ``(loss_x + 0.25 loss_u_s1 + 0.25 loss_u_s2 + 0.5 loss_u_w_fp) / 2``; both
strong views CutMix-ed (boxes from the loader, UniMatch's ``obtain_cutmix_box``); the
labelled and weak unlabelled images in one forward so BatchNorm sees both. The student
is evaluated.

Adaptation: the CutMix partner of each strong view is the previous image of the batch,
its pseudo-label the rolled weak prediction (UniMatch predicts a second unlabelled
batch in eval mode instead); this saves one forward pass and one loader.

Not in the paper, off by default: ``rampup`` (Mean Teacher's sigmoid ramp-up of the
unlabelled weight, for models trained from scratch), ``threshold_mode`` (class-balanced pseudo-labels,
``engine.methods.thresholds``) and ``teacher_ema``, the EMA teacher of UniMatch V2 (Yang
et al., arXiv:2410.10777), which then makes the pseudo-labels in eval mode and is
evaluated. ``target="soft"`` replaces the three thresholded hard-label losses by a
cross-entropy to the weak view's full probabilities on every pixel (the soft consistency
of UDA, Xie et al., NeurIPS 2020, arXiv:1904.12848, without its sharpening); ``target="mse"``
by the squared error between probabilities of Mean Teacher and French et al.'s CutMix;
``strong_color=False`` keeps only the CutMix of the strong views; ``fp_stream=False`` drops
the feature-perturbation stream (the paper's own ablation weights); ``joint_bn=False``
forwards the labelled and the weak unlabelled images apart; ``box_area`` replaces the loader's
boxes (half the views, 2-40%) by French et al.'s one box of a fixed share on every view;
``partner="labeled"`` pastes a labelled image and its ground truth into the strong views' boxes
instead of another unlabelled image, the labelled-to-unlabelled direction of Bidirectional
Copy-Paste (Bai, Chen, Li, Shen, Zhou & Tan, CVPR 2023, arXiv:2305.00673), so that part of
every unlabelled target is true and the labelled garments are seen in new contexts. All were
added to study the pseudo-label drift of docs/results.md.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.methods.base import Method, supervised_loss
from engine.methods.common import (
    box_masks,
    confident_cross_entropy,
    ema_update,
    ground_truth_labels,
    labeled_part,
    make_teacher,
    mix,
    predict,
    probability_mse,
    roll_batch,
    sigmoid_rampup,
    soft_cross_entropy,
)
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.registry import register_method
from engine.methods.thresholds import CONFIDENCE_THRESHOLD, THRESHOLD_MODE, PseudoLabelThreshold
from engine.options import Option

PARTNERS = ("unlabeled", "labeled")
#: Unlabelled losses to the weak view's full probabilities (``target``), on every inside pixel.
SOFT_LOSSES = {"soft": soft_cross_entropy, "mse": probability_mse}


@register_method(
    "unimatch",
    family="hybrid",
    paper="Yang et al., Revisiting weak-to-strong consistency in semi-supervised semantic segmentation, "
          "CVPR 2023 (arXiv:2208.09910)",
    options=(
        CONFIDENCE_THRESHOLD,
        Option("feature_dropout", "float", 0.5, "Channel dropout (Dropout2d) of the feature-perturbation stream.",
               min=0, max=0.95),
        THRESHOLD_MODE,
        Option("teacher_ema", "float", 0.0, "0 (UniMatch): pseudo-labels from the student's own weak-view prediction. "
               "Above 0: from an EMA teacher with this decay, in eval mode, which is also the model evaluated "
               "(UniMatch V2's teacher).", min=0, max=0.99999),
        Option("rampup", "float", 0.0, "Share of the run over which the unlabelled losses' weight ramps up "
               "(Mean Teacher's sigmoid). 0 (UniMatch): full weight from the first step, as suits its "
               "ImageNet-pretrained backbone; a model trained from scratch is confident only about background "
               "at first.", min=0, max=1),
        Option("joint_bn", "bool", True, "Labelled and weak unlabelled images in one forward, so BatchNorm normalises "
               "them together (UniMatch). Off: two forwards, as Mean Teacher and CutMix do (an ablation)."),
        Option("fp_stream", "bool", True, "The feature-perturbation stream (UniMatch). Off: the two strong views "
               "share its weight, (loss_x + 0.5 loss_u_s1 + 0.5 loss_u_s2) / 2, as in the paper's ablation."),
        Option("strong_color", "bool", True, "Colour jitter, grayscale and blur on the strong views (UniMatch). "
               "Off: the strong views are the weak image, CutMix-ed (an ablation)."),
        Option("box_area", "float", 0.0, "0 (UniMatch): the loader's CutMix boxes, on half the strong views, 2-40% of "
               "the image. Above 0: one box of this share on every strong view (French et al.'s CutMix mask, 0.5 "
               "there): a stronger perturbation.", min=0, max=0.99),
        Option("partner", "str", "unlabeled", "unlabeled (UniMatch): each strong view is CutMix-ed with another "
               "unlabelled image and its pseudo-label. labeled: with a labelled image and its ground truth, so the "
               "box carries true labels into the unlabelled stream (Bidirectional Copy-Paste, Bai et al. CVPR 2023).",
               choices=PARTNERS),
        Option("target", "str", "hard", "hard (UniMatch): cross-entropy to confident argmax pseudo-labels. soft: "
               "cross-entropy to the weak view's probabilities on every pixel (UDA-style; no threshold). mse: "
               "squared error to those probabilities on every pixel (the Mean Teacher / CutMix consistency).",
               choices=("hard", *SOFT_LOSSES)),
    ),
)
class UniMatch(Method):
    uses_unlabeled = True

    def __init__(self, model_factory, num_classes: int, *, confidence_threshold: float, feature_dropout: float,
                 threshold_mode: str, teacher_ema: float, rampup: float, joint_bn: bool, fp_stream: bool,
                 strong_color: bool, box_area: float, partner: str, target: str):
        super().__init__(model_factory, num_classes)
        self.threshold = PseudoLabelThreshold(num_classes, confidence_threshold, threshold_mode)
        self.feature_perturbation = nn.Dropout2d(feature_dropout)
        self.teacher_ema, self.rampup, self.strong_color = teacher_ema, rampup, strong_color
        self.fp_stream, self.joint_bn, self.box_area, self.partner = fp_stream, joint_bn, box_area, partner
        self.teacher = make_teacher(self.model) if teacher_ema > 0 else None
        self.soft_loss = SOFT_LOSSES.get(target)  # None: UniMatch's hard, thresholded labels

    def unlabeled_loss(self, logits, pseudo, threshold):
        if self.soft_loss is not None:
            return self.soft_loss(logits, pseudo.probabilities, pseudo.inside)
        return confident_cross_entropy(logits, pseudo, threshold)

    def training_step(self, labeled, unlabeled, step, total_steps):
        img_x, mask_x = labeled["image"], labeled["mask"]
        img_u_w, img_u_s1, img_u_s2 = unlabeled["image_weak"], unlabeled["image_strong1"], unlabeled["image_strong2"]
        if not self.strong_color:
            img_u_s1 = img_u_s2 = img_u_w
        box1, box2 = unlabeled["cutmix_box1"], unlabeled["cutmix_box2"]
        num_lb, size = len(img_x), img_x.shape[-2:]
        if self.box_area > 0:
            box1, box2 = (box_masks(len(img_u_w), size[0], size[1], self.box_area, img_u_w.device) for _ in range(2))

        # The fp stream is decoded in the clean forward's decoder batch (UniMatch's need_fp).
        perturb = self.feature_perturbation if self.fp_stream else None
        if self.joint_bn:
            output = self.model.forward_train(torch.cat((img_x, img_u_w)), perturb)
            output_x, pred_w = labeled_part(output, num_lb), output["out"][num_lb:]
            pred_u_w_fp = output["out_fp"][num_lb:] if perturb is not None else None
        else:
            output_x, weak = self.model.forward_train(img_x), self.model.forward_train(img_u_w, perturb)
            pred_w, pred_u_w_fp = weak["out"], weak.get("out_fp")
        # partner="labeled": labelled image i mod B_x goes into view 1, the previous one into view 2.
        chosen = torch.arange(len(img_u_w), device=img_x.device) % num_lb
        partner_s1, partner_s2 = roll_batch(img_u_s1), roll_batch(img_u_s2)
        if self.partner == "labeled":
            partner_s1, partner_s2 = img_x[chosen], img_x[roll_batch(chosen)]
        pred_u_s1, pred_u_s2 = self.model(torch.cat((mix(img_u_s1, partner_s1, box1),
                                                     mix(img_u_s2, partner_s2, box2)))).chunk(2)

        pred_u_w = pred_w if self.teacher is None else predict(self.teacher, img_u_w)
        self.threshold.observe(mask_x)
        pseudo = self.threshold.pseudo_labels(pred_u_w, unlabeled["padding"],  # conf_u_w, mask_u_w
                                              keep_probabilities=self.soft_loss is not None)
        threshold = self.threshold(pseudo)
        loss_x = supervised_loss(output_x, mask_x)
        partner1 = partner2 = pseudo.rolled()
        if self.partner == "labeled":
            truth = ground_truth_labels(mask_x[chosen], self.num_classes if self.soft_loss is not None else None)
            partner1, partner2 = truth, truth.rolled()
        loss_u_s1 = self.unlabeled_loss(pred_u_s1, pseudo.mixed(partner1, box1), threshold)
        loss_u_s2 = self.unlabeled_loss(pred_u_s2, pseudo.mixed(partner2, box2), threshold)
        if pred_u_w_fp is not None:
            loss_u_w_fp = self.unlabeled_loss(pred_u_w_fp, pseudo, threshold)
            loss_u = 0.25 * loss_u_s1 + 0.25 * loss_u_s2 + 0.5 * loss_u_w_fp
        else:
            loss_u_w_fp = torch.zeros_like(loss_x)
            loss_u = 0.5 * loss_u_s1 + 0.5 * loss_u_s2
        weight = sigmoid_rampup(step, int(self.rampup * total_steps))
        loss = (loss_x + weight * loss_u) / 2.0

        return {"loss": loss, "loss_x": loss_x.detach(), "loss_u_s1": loss_u_s1.detach(),
                "loss_u_s2": loss_u_s2.detach(), "loss_u_w_fp": loss_u_w_fp.detach(),
                # Coverage is the share of pixels that carry the loss: every one with a soft target.
                **pseudo_label_diagnostics(pseudo.label, pseudo.confident(threshold if self.soft_loss is None else 0.0),
                                           unlabeled)}

    def after_optimizer_step(self, step, total_steps):
        if self.teacher is not None:
            ema_update(self.teacher, self.model, self.teacher_ema)

    def eval_model(self):
        return self.teacher if self.teacher is not None else self.model
