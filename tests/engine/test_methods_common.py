"""The shared building blocks of the methods, on tensors whose answer is known by hand."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.methods import build_method
from engine.methods.base import IGNORE_INDEX
from engine.methods.common import (
    PseudoLabels,
    box_masks,
    classmix_masks,
    confident_cross_entropy,
    ema_update,
    ground_truth_labels,
    mix,
    probability_mse,
    roll_batch,
    sigmoid_rampup,
    soft_cross_entropy,
    weighted_cross_entropy,
)
from engine.methods.contrastive import regional_contrast
from engine.methods.cps import cross_pseudo_supervision
from engine.methods.diagnostics import pseudo_label_diagnostics
from engine.methods.self_training import stability
from engine.methods.thresholds import PseudoLabelThreshold
from engine.models import build_model
from tests.engine.conftest import TINY_UNET
from tests.engine.test_methods import NUM_CLASSES, factory, make_batches, run_steps

pytestmark = pytest.mark.usefixtures("single_thread")


def test_ema_update_moves_parameters_by_one_minus_decay_and_copies_buffers():
    teacher, student = nn.BatchNorm2d(1), nn.BatchNorm2d(1)
    with torch.no_grad():
        teacher.weight.fill_(1.0), student.weight.fill_(3.0)
        student.running_mean.fill_(7.0)

    ema_update(teacher, student, decay=0.75)

    assert teacher.weight.item() == pytest.approx(1.5)  # 0.75 * 1 + 0.25 * 3
    assert teacher.running_mean.item() == 7.0
    assert student.weight.item() == 3.0


def test_sigmoid_rampup_goes_from_exp_minus_5_to_1():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(100, 100) == 1.0
    assert sigmoid_rampup(500, 100) == 1.0
    assert sigmoid_rampup(0, 0) == 1.0


def _two_pixel_pseudo_labels() -> PseudoLabels:
    # Pixel 0: p(class 1) = 0.9; pixel 1: p(class 0) = 0.6; pixel 2 is padding.
    probs = torch.tensor([[0.1, 0.9], [0.6, 0.4], [0.99, 0.01]]).T.reshape(1, 2, 1, 3)
    padding = torch.tensor([[[False, False, True]]])
    return PseudoLabels.from_logits(probs.log(), padding)


def test_confidence_masking_keeps_confident_pixels_inside_the_image():
    pseudo = _two_pixel_pseudo_labels()

    assert pseudo.label.tolist() == [[[1, 0, 0]]]
    assert pseudo.confidence[0, 0].tolist() == pytest.approx([0.9, 0.6, 0.99])
    assert pseudo.confident(0.8).tolist() == [[[True, False, False]]]  # the padding pixel never counts
    assert pseudo.targets(0.8).tolist() == [[[1, IGNORE_INDEX, IGNORE_INDEX]]]
    assert pseudo.confident_fraction(0.8).item() == pytest.approx(0.5)


def test_confident_cross_entropy_averages_over_all_inside_pixels():
    pseudo = _two_pixel_pseudo_labels()
    logits = torch.tensor([[0.0, 2.0], [1.0, 0.0], [5.0, 0.0]]).T.reshape(1, 2, 1, 3)

    loss = confident_cross_entropy(logits, pseudo, threshold=0.8)

    expected = F.cross_entropy(torch.tensor([[0.0, 2.0]]), torch.tensor([1])) / 2  # one confident of two inside
    assert loss.item() == pytest.approx(expected.item())
    weighted = weighted_cross_entropy(logits, pseudo, torch.tensor(0.5))
    per_pixel = F.cross_entropy(torch.tensor([[0.0, 2.0], [1.0, 0.0]]), torch.tensor([1, 0]), reduction="none")
    assert weighted.item() == pytest.approx(0.5 * per_pixel.mean().item())


def test_soft_cross_entropy_is_the_cross_entropy_to_the_target_distribution_on_inside_pixels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [9.0, -9.0]]).T.reshape(1, 2, 1, 3)
    target = torch.tensor([[0.6, 0.4], [0.5, 0.5], [0.0, 1.0]]).T.reshape(1, 2, 1, 3)
    inside = torch.tensor([[[True, True, False]]])  # the third (outside) pixel would cost 18

    loss = soft_cross_entropy(logits, target, inside)

    log_p = torch.tensor([[2.0, 0.0], [0.0, 1.0]]).log_softmax(1)
    expected = -(torch.tensor([[0.6, 0.4], [0.5, 0.5]]) * log_p).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item())
    logits.requires_grad_(True)
    soft_cross_entropy(logits, target, torch.ones(1, 1, 3, dtype=torch.bool)).backward()
    assert torch.allclose(logits.grad, (logits.softmax(1) - target).detach() / 3, atol=1e-6)


def test_probability_mse_averages_squared_probability_errors_over_classes_and_inside_pixels():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [9.0, -9.0]]).T.reshape(1, 2, 1, 3)  # q = .5/.5, .75/.25
    target = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.0, 1.0]]).T.reshape(1, 2, 1, 3)
    inside = torch.tensor([[[True, True, False]]])

    loss = probability_mse(logits, target, inside)

    assert loss.item() == pytest.approx(((0.25 + 0.25) / 2 + 0.0) / 2)


def test_mix_takes_source_inside_the_box_for_images_and_targets():
    images = torch.zeros(2, 3, 4, 4)
    images[1] = 1.0
    labels = torch.tensor([0, 1]).view(2, 1, 1).expand(2, 4, 4)
    box = torch.zeros(2, 4, 4)
    box[:, :2, :2] = 1

    mixed_images = mix(images, roll_batch(images), box)
    mixed_labels = mix(labels, roll_batch(labels), box)

    assert mixed_images[0, :, :2, :2].eq(1).all() and mixed_images[0, :, 2:, :].eq(0).all()
    assert mixed_images[1, :, :2, :2].eq(0).all() and mixed_images[1, :, 2:, :].eq(1).all()
    assert mixed_labels[0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert mixed_labels[1, :2, :2].eq(0).all() and mixed_labels[1, 2:].eq(1).all()


def test_mixed_pseudo_labels_follow_the_same_mask():
    pseudo = PseudoLabels(torch.tensor([[[0, 0]], [[1, 1]]]), torch.tensor([[[0.1, 0.1]], [[0.9, 0.9]]]),
                          torch.ones(2, 1, 2, dtype=torch.bool))
    box = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])

    mixed = pseudo.mixed(pseudo.rolled(), box)

    assert mixed.label.tolist() == [[[1, 0]], [[0, 1]]]
    assert torch.allclose(mixed.confidence, torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]]))


def test_mixed_pseudo_labels_carry_their_probabilities_through_the_same_mask():
    probabilities = torch.tensor([[0.2, 0.8], [0.7, 0.3]]).view(2, 2, 1, 1).expand(2, 2, 1, 2)
    padding = torch.zeros(2, 1, 2, dtype=torch.bool)
    pseudo = PseudoLabels.from_probabilities(probabilities, padding, keep_probabilities=True)
    box = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])

    mixed = pseudo.mixed(pseudo.rolled(), box)

    assert mixed.probabilities[0, :, 0, 0].tolist() == pytest.approx([0.7, 0.3])
    assert mixed.probabilities[0, :, 0, 1].tolist() == pytest.approx([0.2, 0.8])
    assert mixed.label.tolist() == [[[0, 1]], [[1, 0]]]


def test_box_masks_cover_the_requested_area():
    torch.manual_seed(0)
    masks = box_masks(16, 40, 40, area=0.5, device=torch.device("cpu"))

    assert masks.mean(dim=(1, 2)).sub(0.5).abs().max() < 0.05


def test_several_box_masks_share_the_area_and_cancel_where_they_overlap():
    torch.manual_seed(0)
    masks = box_masks(64, 48, 48, area=(0.25, 0.5), device=torch.device("cpu"), boxes=3)

    coverage = masks.mean(dim=(1, 2))
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    # Three boxes of 1/3 of a 25-50% share each: at most 50% (no overlap), less where they cancel.
    assert coverage.max() <= 0.5 + 0.03 and 0.2 < coverage.mean() < 0.4
    assert coverage.min() < 0.25  # some overlaps cancelled
    # Two one-pixel boxes on a 2x2 image land on the same pixel a quarter of the time: they
    # cancel to an empty mask, which a union of boxes could never give.
    pixels = box_masks(64, 2, 2, area=1.0, device=torch.device("cpu"), boxes=2)
    assert (pixels.sum((1, 2)) == 0).any() and (pixels.sum((1, 2)) == 2).any()


def test_classmix_masks_take_half_of_each_images_classes_whole():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 2, 3]).repeat_interleave(4).view(1, 4, 4).repeat(8, 1, 1)
    inside = torch.ones_like(labels, dtype=torch.bool)

    masks = classmix_masks(labels, inside, num_classes=4)

    for mask, label in zip(masks, labels, strict=True):
        chosen = label[mask.bool()].unique()
        assert len(chosen) == 2  # half of four classes
        assert mask.bool().eq(torch.isin(label, chosen)).all()  # a chosen class is taken whole
    assert len({tuple(label[mask.bool()].unique().tolist()) for mask, label in zip(masks, labels, strict=True)}) > 1


def test_cps_each_network_learns_the_other_networks_argmax():
    torch.manual_seed(0)
    pred_1 = torch.randn(2, NUM_CLASSES, 3, 3, requires_grad=True)
    pred_2 = torch.randn(2, NUM_CLASSES, 3, 3, requires_grad=True)
    inside = torch.ones(2, 3, 3, dtype=torch.bool)
    inside[:, 0] = False

    loss = cross_pseudo_supervision(pred_1, pred_2, inside)

    target_1 = pred_2.argmax(1).masked_fill(~inside, IGNORE_INDEX)
    target_2 = pred_1.argmax(1).masked_fill(~inside, IGNORE_INDEX)
    expected = (F.cross_entropy(pred_1, target_1, ignore_index=IGNORE_INDEX)
                + F.cross_entropy(pred_2, target_2, ignore_index=IGNORE_INDEX))
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    grad_1 = pred_1.grad.clone()
    pred_1.grad = None
    F.cross_entropy(pred_1, target_1, ignore_index=IGNORE_INDEX).backward()
    assert torch.allclose(grad_1, pred_1.grad)  # pred_1's gradient comes only from its own term


def test_cps_networks_are_initialised_differently():
    torch.manual_seed(0)
    method = build_method("cps", lambda: build_model("unet", NUM_CLASSES, **TINY_UNET), NUM_CLASSES)

    first = torch.cat([p.flatten() for p in method.model.parameters()])
    second = torch.cat([p.flatten() for p in method.model_2.parameters()])
    assert not torch.equal(first, second)
    assert {id(p) for p in method.optimizer_parameters()} >= {id(p) for p in method.model_2.parameters()}


def test_diagnostics_score_only_trusted_pixels_with_known_ground_truth():
    label = torch.tensor([[[1, 1, 2, 2]]])
    trusted = torch.tensor([[[True, True, True, False]]])
    unlabeled = {"padding": torch.tensor([[[False, False, False, True]]]),
                 "hidden_mask": torch.tensor([[[1, 0, IGNORE_INDEX, 2]]])}

    metrics = pseudo_label_diagnostics(label, trusted, unlabeled)

    assert metrics["pseudo_label_coverage"].item() == pytest.approx(1.0)  # 3 trusted of 3 inside
    assert metrics["pseudo_label_accuracy"].item() == pytest.approx(0.5)  # 1 right of 2 scorable
    nothing_known = {**unlabeled, "hidden_mask": torch.full((1, 1, 4), IGNORE_INDEX)}
    assert pseudo_label_diagnostics(label, trusted, nothing_known)["pseudo_label_accuracy"].isnan()  # no value


def test_st_plus_plus_stability_is_mean_iou_against_the_final_checkpoint():
    final = torch.tensor([[[0, 0, 1, 1]], [[0, 0, 1, 1]]])
    same = final.clone()
    half = torch.tensor([[[0, 0, 1, 1]], [[0, 1, 1, 0]]])

    scores = stability([same, half, final], num_classes=2)

    assert scores[0].item() == pytest.approx(1.0)
    assert scores[1].item() == pytest.approx((1.0 + 1 / 3) / 2)  # identical, then IoU 1/3 for both classes


def test_self_training_switches_to_a_reinitialised_student_after_the_teacher_stage():
    torch.manual_seed(0)
    method = build_method("self_training", factory(), NUM_CLASSES, teacher_fraction=0.5, checkpoints=2)
    initial = {k: v.clone() for k, v in method.model.state_dict().items()}

    teacher_stage = run_steps(method, 32, range(0, 2), total_steps=4)
    student = {k: v.clone() for k, v in method.model.state_dict().items()}
    student_stage = run_steps(method, 32, range(2, 4), total_steps=4)

    assert [float(r["stage"]) for r in teacher_stage + student_stage] == [1.0, 1.0, 2.0, 2.0]
    assert all(torch.equal(student[k], initial[k]) for k in initial)  # re-initialised at the switch
    first, final = (checkpoint.state_dict() for checkpoint in method.checkpoints)
    trained = [k for k in initial if initial[k].is_floating_point()]
    assert any(not torch.equal(final[k], first[k]) for k in trained)  # snapshots after steps 1 and 2
    assert any(not torch.equal(final[k], initial[k]) for k in trained)
    assert 0.0 < float(student_stage[-1]["pseudo_label_coverage"]) <= 0.5 + 1e-6  # the stable half of the batch


def test_adversarial_discriminator_optimiser_state_travels_in_the_state_dict():
    torch.manual_seed(0)
    method = build_method("adversarial", factory(), NUM_CLASSES)
    run_steps(method, 32, range(1, 2), total_steps=2)

    resumed = build_method("adversarial", factory(), NUM_CLASSES)
    resumed.load_state_dict(method.state_dict())

    saved = method.discriminator_optimizer.state_dict()["state"]
    loaded = resumed.discriminator_optimizer.state_dict()["state"]
    assert saved and saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k]["exp_avg"], loaded[k]["exp_avg"]) for k in saved)
    assert all(torch.equal(a, b)
               for a, b in zip(method.discriminator.parameters(), resumed.discriminator.parameters(), strict=True))
    assert not any(p in set(method.optimizer_parameters()) for p in method.discriminator.parameters())


def test_adversarial_steps_the_segmenter_against_the_discriminator_as_it_was_then_the_discriminator():
    torch.manual_seed(0)
    method = build_method("adversarial", factory(), NUM_CLASSES)
    method.train()
    reference = copy.deepcopy(method)
    before = [p.clone() for p in method.discriminator.parameters()]
    labeled, unlabeled = make_batches(32)

    losses = method.training_step(labeled, unlabeled, step=0, total_steps=4)
    losses["loss"].backward()
    assert all(torch.equal(a, b) for a, b in zip(before, method.discriminator.parameters(), strict=True))  # D as it was
    assert all(p.grad is None for p in method.discriminator.parameters())  # the segmenter's loss never trains D
    method.after_optimizer_step(0, 4)

    # D's step: Adam on the same predictions, detached, from the segmentation network before its step.
    pred_x, pred_u = reference.model(labeled["image"]), reference.model(unlabeled["image_weak"])
    loss_d = reference.discriminator_loss(pred_x.detach(), pred_u.detach(), labeled["mask"], ~unlabeled["padding"])
    assert losses["loss_d"].item() == pytest.approx(loss_d.item())
    loss_d.backward()
    reference.discriminator_optimizer.step()
    for stepped, expected, old in zip(method.discriminator.parameters(), reference.discriminator.parameters(), before,
                                      strict=True):
        assert torch.allclose(stepped, expected, atol=1e-7) and not torch.equal(stepped, old)


def test_unimatch_decodes_dropped_out_features_through_the_same_decoder():
    method = build_method("unimatch", factory(), NUM_CLASSES)
    labeled, unlabeled = make_batches(32)
    calls = []
    method.model.decoder.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0][0])))

    method.train().training_step(labeled, unlabeled, 0, 1)

    # One decoder batch for labelled + weak, clean and perturbed (UniMatch's need_fp), then both strong views.
    assert calls == [8, 4]


def test_unimatch_without_joint_bn_forwards_labelled_and_weak_images_apart():
    method = build_method("unimatch", factory(), NUM_CLASSES, joint_bn=False)
    labeled, unlabeled = make_batches(32)
    calls = []
    method.model.decoder.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0][0])))

    method.train().training_step(labeled, unlabeled, 0, 1)

    assert calls == [2, 4, 4]  # labelled, weak clean + perturbed in one decoder batch, both strong views


def test_fixed_threshold_mode_is_the_one_confidence():
    gate = PseudoLabelThreshold(3, 0.9)
    gate.observe(torch.tensor([[0, 1, 2]]))
    pseudo = PseudoLabels(torch.tensor([[[0, 1]]]), torch.tensor([[[0.95, 0.5]]]),
                          torch.ones(1, 1, 2, dtype=torch.bool))
    assert gate(pseudo) == 0.9 and gate.class_counts.sum() == 0  # fixed mode keeps no prior


def test_distribution_thresholds_share_the_trusted_pixels_as_the_labelled_classes():
    gate = PseudoLabelThreshold(2, 0.9, "distribution")
    gate.observe(torch.tensor([[0, 0, 0, 1, IGNORE_INDEX]]))  # prior 3/4 background, 1/4 class 1
    # 8 pixels: 6 background, all above 0.9; 2 class-1 pixels at 0.6 and 0.3. 6 are trusted
    # by 0.9, so the quotas are 4.5 -> 4 (rounded to even) background and 1.5 -> 2 class 1.
    label = torch.tensor([[[0, 0, 0, 0, 0, 0, 1, 1]]])
    confidence = torch.tensor([[[0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.6, 0.3]]])
    pseudo = PseudoLabels(label, confidence, torch.ones_like(label, dtype=torch.bool))
    thresholds = gate(pseudo)
    assert thresholds.tolist() == pytest.approx([0.96, 0.3])
    assert pseudo.confident(thresholds).tolist() == [[[True] * 4 + [False] * 2 + [True] * 2]]


def test_distribution_thresholds_ignore_padding_and_trust_nothing_of_a_class_without_quota():
    gate = PseudoLabelThreshold(3, 0.5, "distribution")
    gate.observe(torch.tensor([[0, 1]]))  # class 2 never labelled
    label = torch.tensor([[[0, 1, 2, 1]]])
    confidence = torch.tensor([[[0.9, 0.8, 0.99, 0.95]]])
    inside = torch.tensor([[[True, True, True, False]]])  # the 0.95 class-1 pixel is padding
    thresholds = gate(PseudoLabels(label, confidence, inside))
    assert thresholds[1] == pytest.approx(0.8) and thresholds[2] > 1


def test_regional_contrast_of_separated_classes_has_the_closed_form_loss():
    # Two classes whose pixels sit on orthogonal unit vectors: every query meets its prototype
    # at cosine 1 and each of its N negatives at 0, so each class's loss is
    # -log(e^(1/T) / (e^(1/T) + N)), whichever pixels are sampled.
    rep = torch.zeros(1, 4, 2, 4)
    rep[0, 0, :, :2], rep[0, 1, :, 2:] = 1.0, 1.0
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]])
    probs = torch.full((1, 2, 2, 4), 0.5)
    temperature, negatives = 0.5, 7
    loss = regional_contrast(rep, labels, probs, strong_threshold=0.97, temperature=temperature, num_queries=5,
                             num_negatives=negatives)
    expected = -math.log(math.exp(1 / temperature) / (math.exp(1 / temperature) + negatives))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_alignment_scales_probabilities_by_prior_over_predicted_marginal():
    gate = PseudoLabelThreshold(2, 0.6, "alignment")
    gate.observe(torch.tensor([[0, 1]]))  # labelled prior 1/2, 1/2
    # Two pixels predicted (0.9, 0.1) and (0.6, 0.4): marginal (0.75, 0.25), so class 0 is
    # scaled by 0.5/0.75 and class 1 by 0.5/0.25, then renormalised.
    probabilities = torch.tensor([[[[0.9, 0.6]], [[0.1, 0.4]]]])  # (1, 2, 1, 2)
    pseudo = gate.pseudo_labels(probabilities.log(), torch.zeros(1, 1, 2, dtype=torch.bool))
    aligned = probabilities * torch.tensor([2 / 3, 2.0])[None, :, None, None]
    aligned = aligned / aligned.sum(1, keepdim=True)  # pixel 1: (0.75, 0.25); pixel 2: (0.333, 0.667)
    assert pseudo.label.tolist() == [[[0, 1]]]  # the second pixel changed class
    assert torch.allclose(pseudo.confidence, aligned.max(1).values)
    assert gate(pseudo) == 0.6 and pseudo.confident(gate(pseudo)).tolist() == [[[True, True]]]
    assert torch.allclose(gate.predicted, torch.tensor([0.75, 0.25], dtype=torch.float64))


@pytest.mark.parametrize(("step", "weight"), [(0, math.exp(-5)), (50, 1.0), (80, 1.0)])
def test_unimatch_rampup_scales_only_the_unlabelled_losses(step, weight):
    torch.manual_seed(0)
    method = build_method("unimatch", factory(), NUM_CLASSES, confidence_threshold=0.0, rampup=0.5)
    labeled, unlabeled = make_batches(32)

    losses = method.training_step(labeled, unlabeled, step, total_steps=100)

    unlabelled = 0.25 * losses["loss_u_s1"] + 0.25 * losses["loss_u_s2"] + 0.5 * losses["loss_u_w_fp"]
    assert unlabelled > 0
    assert losses["loss"].item() == pytest.approx(((losses["loss_x"] + weight * unlabelled) / 2).item(), rel=1e-5)


def test_unimatch_without_strong_color_trains_on_the_weak_image_in_both_strong_views():
    torch.manual_seed(0)
    method = build_method("unimatch", factory(), NUM_CLASSES, strong_color=False)
    labeled, unlabeled = make_batches(32)
    as_weak = {**unlabeled, "image_strong1": unlabeled["image_weak"], "image_strong2": unlabeled["image_weak"]}

    torch.manual_seed(1)
    losses = method.training_step(labeled, unlabeled, 0, total_steps=10)
    torch.manual_seed(1)
    expected = method.training_step(labeled, as_weak, 0, total_steps=10)

    assert not torch.equal(unlabeled["image_strong1"], unlabeled["image_weak"])
    assert losses["loss_u_s1"].item() == pytest.approx(expected["loss_u_s1"].item())
    assert losses["loss"].item() == pytest.approx(expected["loss"].item())


def test_unimatch_without_fp_stream_gives_the_strong_views_its_weight():
    torch.manual_seed(0)
    method = build_method("unimatch", factory(), NUM_CLASSES, confidence_threshold=0.0, fp_stream=False)
    labeled, unlabeled = make_batches(32)

    losses = method.training_step(labeled, unlabeled, 0, total_steps=10)

    assert losses["loss_u_w_fp"].item() == 0.0
    expected = (losses["loss_x"] + 0.5 * losses["loss_u_s1"] + 0.5 * losses["loss_u_s2"]) / 2
    assert losses["loss_u_s1"] > 0 and losses["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_unimatch_box_area_mixes_every_strong_view_with_french_boxes_instead_of_the_loaders():
    torch.manual_seed(0)
    method = build_method("unimatch", factory(), NUM_CLASSES, box_area=0.5)
    loader_boxes = copy.deepcopy(method)
    loader_boxes.box_area = 0.0
    labeled, unlabeled = make_batches(32)
    batch, _, height, width = unlabeled["image_weak"].shape
    no_boxes = {**unlabeled, "cutmix_box1": torch.zeros(batch, height, width),
                "cutmix_box2": torch.zeros(batch, height, width)}

    torch.manual_seed(1)
    losses = method.training_step(labeled, no_boxes, 0, total_steps=10)
    torch.manual_seed(1)
    box1, box2 = (box_masks(batch, height, width, 0.5, torch.device("cpu")) for _ in range(2))
    expected = loader_boxes.training_step(labeled, {**unlabeled, "cutmix_box1": box1, "cutmix_box2": box2}, 0,
                                          total_steps=10)

    assert box1.mean((1, 2)).tolist() == pytest.approx([0.5] * batch, abs=0.05)  # half of every view is mixed
    for name in ("loss_u_s1", "loss_u_s2", "loss"):
        assert losses[name].item() == pytest.approx(expected[name].item(), rel=1e-5)


def test_debias_starts_uniform_and_holds_back_the_class_the_model_over_calls():
    gate = PseudoLabelThreshold(2, 0.6, "debias")
    inside = torch.zeros(1, 1, 1, dtype=torch.bool)
    first = gate.pseudo_labels(torch.tensor([[[[0.6]], [[0.4]]]]).log(), inside)
    # From a uniform p_hat one batch moves it by 1 - 0.999: the labels barely change.
    assert torch.allclose(gate.predicted, torch.tensor([0.5 + 0.001 * 0.1, 0.5 - 0.001 * 0.1], dtype=torch.float64))
    assert first.label.item() == 0

    gate.predicted.copy_(torch.tensor([0.9, 0.1], dtype=torch.float64))  # the model has called class 0 on 90%
    pseudo = gate.pseudo_labels(torch.tensor([[[[0.6]], [[0.4]]]]).log(), inside)
    p_hat = 0.999 * torch.tensor([0.9, 0.1]) + 0.001 * torch.tensor([0.6, 0.4])
    adjusted = torch.tensor([0.6, 0.4]) * p_hat.pow(-0.4)  # softmax(logits - 0.4 log p_hat)
    adjusted = adjusted / adjusted.sum()
    assert pseudo.label.item() == 1 and pseudo.confidence.item() == pytest.approx(adjusted.max().item(), rel=1e-5)
    assert gate(pseudo) == 0.6  # the threshold stays the fixed one


def test_ground_truth_labels_are_confident_and_leave_ignored_pixels_outside():
    truth = ground_truth_labels(torch.tensor([[[0, 2, IGNORE_INDEX]]]), num_classes=3)

    assert truth.label.tolist() == [[[0, 2, 0]]] and truth.inside.tolist() == [[[True, True, False]]]
    assert truth.confidence.tolist() == [[[1.0, 1.0, 1.0]]]
    assert truth.probabilities[0, :, 0, 1].tolist() == [0.0, 0.0, 1.0]


def test_unimatch_labeled_partner_pastes_labelled_images_and_their_ground_truth_into_the_strong_views():
    torch.manual_seed(0)
    method = build_method("unimatch", factory(), NUM_CLASSES, partner="labeled", fp_stream=False).eval()
    labeled, unlabeled = make_batches(32)
    batch, _, height, width = unlabeled["image_weak"].shape
    whole = torch.ones(batch, height, width)  # the box covers every pixel: the view is the labelled image

    losses = method.training_step(labeled, {**unlabeled, "cutmix_box1": whole, "cutmix_box2": whole}, 0, 10)

    image, mask = labeled["image"], labeled["mask"]
    with torch.no_grad():
        view1 = F.cross_entropy(method.model(image), mask, ignore_index=IGNORE_INDEX)
        view2 = F.cross_entropy(method.model(image.roll(1, 0)), mask.roll(1, 0), ignore_index=IGNORE_INDEX)
    assert losses["loss_u_s1"].item() == pytest.approx(view1.item(), rel=1e-4)
    assert losses["loss_u_s2"].item() == pytest.approx(view2.item(), rel=1e-4)


def test_classmix_masks_draw_what_a_per_image_unique_and_randperm_draws():
    """The batched masks give the same draws as ClassMix's per-image loop, and classes seen only
    on padding are never chosen."""
    torch.manual_seed(0)
    labels = torch.randint(0, 6, (5, 8, 8))
    labels[0] = 1  # one class: it is taken
    inside = torch.rand(5, 8, 8) > 0.3
    labels[2][~inside[2]] = 5  # class 5 only outside the image in image 2

    torch.manual_seed(1)
    masks = classmix_masks(labels, inside, num_classes=6)
    torch.manual_seed(1)
    expected = torch.zeros_like(masks)
    for i in range(len(labels)):
        classes = labels[i][inside[i]].unique()
        chosen = classes[torch.randperm(len(classes))[: (len(classes) + 1) // 2]]
        expected[i] = torch.isin(labels[i], chosen).float()

    assert torch.equal(masks, expected)
    assert 5 not in labels[2][masks[2].bool() & inside[2]].tolist()


def test_distribution_thresholds_are_each_classes_quota_th_confidence():
    torch.manual_seed(0)
    gate = PseudoLabelThreshold(4, 0.7, "distribution")
    gate.observe(torch.randint(0, 3, (2, 16, 16)))  # class 3 never labelled: no quota
    label = torch.randint(0, 4, (2, 16, 16))
    confidence = torch.rand(2, 16, 16)
    inside = torch.rand(2, 16, 16) > 0.2
    pseudo = PseudoLabels(label, confidence, inside)

    thresholds = gate(pseudo)

    trusted = int(pseudo.confident(0.7).sum())
    quotas = (gate.class_counts / gate.class_counts.sum() * trusted).round().long().tolist()
    for c, quota in enumerate(quotas):
        confidences = confidence[(label == c) & inside]
        count = min(quota, confidences.numel())
        assert thresholds[c] == (confidences.topk(count).values[-1] if count else 2.0)


def test_cct_class_boxes_bound_each_predicted_class():
    from engine.methods.cct import class_boxes

    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 9, 7))
    labels[1][labels[1] == 2] = 0  # class 2 absent from image 1

    boxes = class_boxes(labels, num_classes=4)

    for i in range(2):
        for c in range(4):
            rows, cols = (labels[i] == c).nonzero(as_tuple=True)
            expected = None
            if len(rows):
                expected = (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item())
            assert boxes[i][c] == expected


def test_st_plus_plus_stability_equals_the_per_class_iou_loop():
    torch.manual_seed(0)
    predictions = [torch.randint(0, 4, (3, 6, 6)) for _ in range(3)]
    predictions[0][0] = 3  # classes absent from both maps are left out of the mean

    final = predictions[-1].flatten(1)
    expected = []
    for earlier in predictions[:-1]:
        ious = []
        for c in range(5):
            a, b = earlier.flatten(1) == c, final == c
            union = (a | b).sum(1).float()
            ious.append(torch.where(union > 0, (a & b).sum(1).float() / union.clamp_min(1), float("nan")))
        expected.append(torch.stack(ious, 1).nanmean(1))

    assert torch.equal(stability(predictions, num_classes=5), torch.stack(expected, 1).mean(1))
