"""Augmentations on known tensors: alignment, ignore padding, mixing masks."""
from __future__ import annotations

import random

import pytest
import torch

from engine.data import transforms as T


def coded_pair(height: int = 48, width: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 blocks of classes 0-4; the image's red channel is 50 x class, so image and mask can be compared."""
    rows = torch.arange(height).view(-1, 1) // 8
    cols = torch.arange(width).view(1, -1) // 8
    mask = ((rows * 3 + cols) % 5).to(torch.uint8)
    image = torch.stack([mask * 50, torch.full_like(mask, 7), 255 - mask * 50])
    return image.to(torch.uint8), mask


@pytest.mark.parametrize("seed", range(12))
def test_image_and_mask_stay_aligned_under_geometry(seed):
    rng = random.Random(seed)
    image, mask = coded_pair()
    crop, crop_mask, padding = T.random_scale_crop(image, mask, 40, rng=rng)
    crop, crop_mask, padding = T.random_hflip(crop, crop_mask, padding, rng=rng)
    assert crop.shape == (3, 40, 40) and crop_mask.shape == (40, 40) and crop.dtype == torch.uint8
    # Away from block edges (where bilinear blends two classes), the image says the class.
    same = torch.nn.functional.max_pool2d(crop_mask[None, None].float(), 3, 1, 1)[0, 0] == \
        -torch.nn.functional.max_pool2d(-crop_mask[None, None].float(), 3, 1, 1)[0, 0]
    interior = same & ~padding & (crop_mask != T.IGNORE_INDEX)
    assert interior.sum() > 50
    assert torch.equal(crop[0][interior], (crop_mask[interior] * 50).to(torch.uint8))


def test_crop_pads_with_ignore_where_the_image_is_smaller():
    image, mask = coded_pair(20, 24)
    crop, crop_mask, padding = T.random_scale_crop(image, mask, 32, low=1.0, high=1.0, rng=random.Random(0))
    assert padding[:20, :24].logical_not().all() and padding[20:].all() and padding[:, 24:].all()
    assert (crop_mask[padding] == T.IGNORE_INDEX).all() and (crop[:, padding] == 0).all()
    assert torch.equal(crop_mask[:20, :24], mask) and torch.equal(crop[:, :20, :24], image)


def test_scale_range_is_respected():
    image, mask = coded_pair(32, 32)
    for seed in range(20):
        *_, padding = T.random_scale_crop(image, mask, 96, low=0.5, high=2.0, rng=random.Random(seed))
        side = int((~padding).sum().sqrt())
        assert 16 <= side <= 64  # the 32 px image scaled by 0.5-2.0


def test_flip_moves_everything_together():
    image, mask = coded_pair()
    flipped = T.random_hflip(image, mask, p=1.0)
    assert torch.equal(flipped[0], image.flip(-1)) and torch.equal(flipped[1], mask.flip(-1))
    assert T.random_hflip(image, mask, p=0.0) == (image, mask)


def test_identity_colour_transform_is_plain_normalisation():
    image, _ = coded_pair()
    matrix, offset = T.color_transform(image.float().mean((1, 2)), jitter_p=0.0, grayscale_p=0.0)
    assert torch.allclose(T.apply_color(image, matrix, offset), T.normalize(image), atol=1e-5)


def test_brightness_scales_and_grayscale_equalises_channels():
    image, _ = coded_pair()
    image = (image // 2).to(torch.uint8)  # room to brighten without clipping
    matrix, offset = T.color_transform(image.float().mean((1, 2)), brightness=0.5, contrast=0, saturation=0,
                                       hue=0, jitter_p=1.0, grayscale_p=0.0, rng=random.Random(1))
    factor = matrix[0, 0].item()
    assert 0.5 <= factor <= 1.5 and torch.allclose(matrix, factor * torch.eye(3))
    matrix, offset = T.color_transform(image.float().mean((1, 2)), jitter_p=0.0, grayscale_p=1.0)
    rgb = T.denormalize(T.apply_color(image, matrix, offset))
    assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])


def test_contrast_blends_toward_the_mean_grey():
    image, _ = coded_pair()
    mean = image.float().mean((1, 2))
    matrix, offset = T.color_transform(mean, brightness=0, contrast=1.0, saturation=0, hue=0, jitter_p=1.0,
                                       grayscale_p=0.0, rng=random.Random(5))
    ratio = matrix[0, 0].item()
    grey = (torch.tensor(T.LUMA) @ mean).item()
    assert torch.allclose(offset, torch.full((3,), (1 - ratio) * grey))


def test_hue_rotation_keeps_grey_grey():
    grey = torch.full((3, 4, 4), 128, dtype=torch.uint8)
    matrix, offset = T.color_transform(grey.float().mean((1, 2)), brightness=0, contrast=0, saturation=0, hue=0.5,
                                       jitter_p=1.0, grayscale_p=0.0, rng=random.Random(2))
    assert torch.equal(T.denormalize(T.apply_color(grey, matrix, offset)), grey)


def test_gaussian_blur_keeps_constants_and_smooths_edges():
    flat = torch.full((3, 16, 16), 0.7)
    assert torch.allclose(T.gaussian_blur(flat, 1.5), flat, atol=1e-6)
    step = torch.zeros(3, 16, 16)
    step[:, :, 8:] = 1
    blurred = T.gaussian_blur(step, 1.0)
    assert 0 < blurred[0, 5, 7] < 0.5 < blurred[0, 5, 8] < 1
    assert torch.allclose(blurred.mean(), step.mean(), atol=1e-6)


def test_strong_view_is_normalised_float_of_the_same_size():
    image, _ = coded_pair()
    view = T.strong_view(image, rng=random.Random(0))
    assert view.shape == (3, 48, 64) and view.dtype == torch.float32
    low = T.normalize(torch.zeros(3, 1, 1, dtype=torch.uint8)).view(3)
    high = T.normalize(torch.full((3, 1, 1), 255, dtype=torch.uint8)).view(3)
    assert (view >= low.view(3, 1, 1) - 1e-5).all() and (view <= high.view(3, 1, 1) + 1e-5).all()


def test_blur_sigma_is_unimatchs_at_its_crop_and_scaled_with_the_crop():
    assert T.blur_sigma("crop", 321) == pytest.approx((0.1, 2.0))
    assert T.blur_sigma("crop", 64) == pytest.approx((0.1 * 64 / 321, 2.0 * 64 / 321))
    assert T.blur_sigma("pixels", 64) == (0.1, 2.0)
    with pytest.raises(ValueError, match="strong_blur must be one of crop, pixels; got 'px'"):
        T.blur_sigma("px", 64)


def test_cutmix_box_area_is_within_range():
    size = 64
    for seed in range(100):
        box = T.cutmix_box(size, p=1.0, rng=random.Random(seed))
        area = box.sum().item() / size**2
        assert set(box.unique().tolist()) == {0.0, 1.0}
        assert 0.015 <= area <= 0.4  # 2-40% of the crop, less the integer rounding of the sides
    assert T.cutmix_box(size, p=0.0).sum() == 0


def test_batched_cutmix_boxes_on_the_device():
    generator = torch.Generator().manual_seed(0)
    boxes = T.cutmix_boxes(200, 32, 48, p=1.0, generator=generator)
    area = boxes.sum((1, 2)) / (32 * 48)
    assert boxes.shape == (200, 32, 48) and ((area >= 0.01) & (area <= 0.4)).all()
    rows, cols = boxes.amax(2), boxes.amax(1)  # a box is one rectangle: its row and column extents multiply
    assert torch.equal(boxes.sum((1, 2)), rows.sum(1) * cols.sum(1))
    assert T.cutmix_boxes(10, 8, 8, p=0.0).sum() == 0


def test_cutout_erases_the_image_and_ignores_the_mask():
    image, mask = coded_pair()
    erased, erased_mask = T.cutout(image, mask, p=1.0, fill=0, rng=random.Random(3))
    box = erased_mask == T.IGNORE_INDEX
    assert box.any() and (erased[:, box] == 0).all()
    assert torch.equal(erased[:, ~box], image[:, ~box]) and torch.equal(erased_mask[~box], mask[~box])


@pytest.mark.parametrize("classes, chosen", [([0, 1, 2, 3], 2), ([0, 2, 5, 6, 7, 9], 3), ([1, 4, 8], 2), ([3], 1)])
def test_classmix_picks_half_the_classes_present(classes, chosen):
    prediction = torch.tensor(classes).repeat_interleave(10).view(1, -1).expand(4, -1).reshape(4, 1, -1)
    prediction = prediction.expand(4, 5, -1).contiguous()  # (B, H, W)
    generator = torch.Generator().manual_seed(0)
    mask = T.classmix_mask(prediction, num_classes=10, generator=generator)
    assert mask.shape == prediction.shape
    for b in range(4):
        picked = prediction[b][mask[b] == 1].unique().tolist()
        assert len(picked) == chosen  # (C + C % 2) / 2, as in ClassMix's generate_class_mask
        assert torch.equal(mask[b] == 1, torch.isin(prediction[b], torch.tensor(picked)))  # whole classes


def test_classmix_varies_and_never_picks_ignore():
    prediction = torch.tensor([0, 1, 2, 3, 255]).repeat(8, 6, 1)
    masks = T.classmix_mask(prediction, num_classes=4, generator=torch.Generator().manual_seed(1))
    assert (masks[..., 4] == 0).all()
    assert len({tuple(m[0, :4].tolist()) for m in masks}) > 1  # different images pick different classes


def test_batched_strong_views_equal_the_per_image_ones_to_rounding():
    """What the GPU computes (batched colour maps, grouped-convolution blurs with per-image radii)
    against what a loader worker computed, one image at a time."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 30, 34), dtype=torch.uint8, generator=generator)
    rng = random.Random(3)
    draws = [T.draw_strong_view(image, blur_p=1.0, sigma=(0.1, 3.0), rng=rng) for image in images]
    colors = torch.stack([color for color, _ in draws])
    blurs = [blur for _, blur in draws]
    blurs[1] = 0.0  # an unblurred view in a batch of blurred ones
    assert len({max(1, int(3 * blur + 0.5)) for blur in blurs if blur}) > 1  # radii differ within the batch

    one_by_one = T.apply_strong_views(list(images), colors, blurs)  # the CPU path
    batched = T.strong_views_batched(images, colors, blurs)

    assert torch.allclose(batched, one_by_one, atol=1e-5, rtol=0)
    assert torch.equal(T.gaussian_blurs(one_by_one, [0.0] * 5), one_by_one)
