"""inspect_dataset: a description of a valid dataset, or every problem with the file that has it."""
from __future__ import annotations

import io
import json
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from engine.data import DatasetError, DatasetInfo, Limits, inspect_dataset, load_index
from engine.data import inspect as inspect_module
from engine.data.layouts import voc_color
from engine.data.masks import read_mask
from tests.pngs import png_declaring, with_broken_pixel_data


def blocks(values: list[int], size: int = 16) -> np.ndarray:
    """A mask made of vertical stripes, one per value."""
    mask = np.zeros((size, size), dtype=np.uint8)
    for i, value in enumerate(values):
        mask[:, i * size // len(values):(i + 1) * size // len(values)] = value
    return mask


def messages(error: pytest.ExceptionInfo) -> dict[str, str]:
    return {file: message for file, message in error.value.errors}


def test_valid_dataset_is_described(write_dataset):
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 2, 255]), "c": None}, classes=["bg", "cat", "dog"])
    info = inspect_dataset(root)
    assert (info.num_images, info.num_labeled, info.num_unlabeled) == (3, 2, 1)
    assert [c["name"] for c in info.classes] == ["bg", "cat", "dog"]
    assert info.layout == "images-masks" and not info.binary_255
    assert info.image_sizes == {"min_width": 16, "max_width": 16, "min_height": 16, "max_height": 16}
    shares = [c["pixel_share"] for c in info.classes]
    assert sum(shares) == pytest.approx(1.0)
    assert shares[0] > shares[1] > 0 and shares[2] > 0  # ignore pixels count for no class
    assert [c["num_images"] for c in info.classes] == [2, 1, 1]
    assert DatasetInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


def test_classes_are_counted_from_masks_without_classes_json(write_dataset):
    info = inspect_dataset(write_dataset({"a": blocks([0, 1, 3])}))
    assert [c["name"] for c in info.classes] == ["background", "class 1", "class 2", "class 3"]
    assert any("label(s) [2]" in warning for warning in info.warnings)


def test_binary_masks_stored_as_0_255_are_two_classes(write_dataset):
    root = write_dataset({"a": blocks([0, 255]), "b": blocks([0, 0, 255])})
    info = inspect_dataset(root)
    assert info.binary_255 and [c["name"] for c in info.classes] == ["background", "foreground"]
    assert info.classes[1]["pixel_share"] > 0.3
    index = load_index(root)
    assert index.label_table()[255] == 1 and index.label_table()[0] == 0


def test_binary_masks_stored_as_0_1_are_two_classes(write_dataset):
    info = inspect_dataset(write_dataset({"a": blocks([0, 1])}))
    assert not info.binary_255 and [c["name"] for c in info.classes] == ["background", "foreground"]


def test_bilevel_mode_1_masks_are_two_classes(write_dataset):
    info = inspect_dataset(write_dataset({"a": Image.fromarray(blocks([0, 255])).convert("1")}))
    assert info.binary_255 and info.num_classes == 2


def test_0_255_masks_with_two_named_classes_are_binary(write_dataset):
    info = inspect_dataset(write_dataset({"a": blocks([0, 255])}, classes=["sky", "plane"]))
    assert info.binary_255 and [c["name"] for c in info.classes] == ["sky", "plane"]


def test_label_outside_classes_names_the_file(write_dataset):
    root = write_dataset({"a": blocks([0, 7]), "b": blocks([0, 1])}, classes=["c0", "c1", "c2", "c3", "c4"])
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert messages(error) == {
        "masks/a.png": "mask a.png has label 7 but classes.json defines 5 classes (0-4; 255 = ignore)"}


def test_mask_without_image(write_dataset):
    root = write_dataset({"a": blocks([0, 1])})
    Image.fromarray(blocks([0, 1])).save(root / "masks" / "orphan.png")
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert "mask has no image" in messages(error)["masks/orphan.png"]


def test_mask_size_differs_from_image(write_dataset):
    root = write_dataset({"a": blocks([0, 1])})
    Image.fromarray(blocks([0, 1], size=12)).save(root / "masks" / "a.png")
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert "mask is 12x12 but its image images/a.png is 16x16" in messages(error)["masks/a.png"]


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40],
                         ids=["garbage", "header-only"])
def test_unreadable_image(write_dataset, content):
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 1])})
    (root / "images" / "b.png").write_bytes(content)
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    message = messages(error)["images/b.png"]
    assert message.startswith("unreadable image: not an image file Pillow can read")
    assert str(root) not in message and "/" not in message and "Error" not in message


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image(write_dataset, suffix):
    root = write_dataset({"a": None}, image_size=(64, 64))
    write_dataset({"b": blocks([0, 1], size=64)}, root=root)
    picture = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    (root / "images" / "a.png").unlink()
    Image.fromarray(picture).save(root / "images" / f"a{suffix}")
    data = (root / "images" / f"a{suffix}").read_bytes()
    (root / "images" / f"a{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert messages(error)[f"images/a{suffix}"].startswith("unreadable image")


@pytest.mark.parametrize("file", ["images/b.png", "masks/b.png"])
def test_broken_compressed_data_with_valid_crcs_is_refused(write_dataset, file):
    # Given a PNG whose chunk CRCs are right but whose compressed pixel data is not
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 1], size=32)})
    broken = with_broken_pixel_data((root / file).read_bytes())
    (root / file).write_bytes(broken)
    with Image.open(io.BytesIO(broken)) as image:
        image.verify()  # the chunk walk alone finds nothing
    # When it is inspected, then it is refused by name, in words
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    kind = "image" if file.startswith("images") else "mask"
    assert messages(error)[file].startswith(f"unreadable {kind}: image data is corrupt or truncated")
    assert set(messages(error)) == {file}


@pytest.mark.parametrize("file", ["images/a.png", "masks/a.png"])
@pytest.mark.parametrize("width, height", [(20000, 20000), (9000, 9000)], ids=["pillow-refuses", "over-our-limit"])
def test_a_file_declaring_a_huge_image_is_refused_by_name(write_dataset, file, width, height):
    # 20000x20000 is past Pillow's own bomb limit (Image.open raises); 9000x9000 only past ours.
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 1])})
    (root / file).write_bytes(png_declaring(width, height))
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert set(messages(error)) == {file}
    message = messages(error)[file]
    assert "decompression bomb" in message or f"{width}x{height} pixels is more than the limit" in message


def test_a_mask_in_pillows_warning_zone_is_refused_by_our_own_limit(write_dataset):
    # Pillow only warns between MAX_IMAGE_PIXELS and twice that; our lower limit refuses it.
    side = int(Image.MAX_IMAGE_PIXELS ** 0.5) + 100
    root = write_dataset({"a": blocks([0, 1])})
    (root / "masks" / "a.png").write_bytes(png_declaring(side, side))
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert f"{side}x{side} pixels is more than the limit" in messages(error)["masks/a.png"]


def test_checking_never_changes_the_process_warnings_filter(write_dataset, monkeypatch):
    # The filter is process-wide: setting it from the checking threads races with every other thread.
    changes = []
    for name in ("catch_warnings", "simplefilter", "filterwarnings"):
        real = getattr(warnings, name)
        monkeypatch.setattr(warnings, name, lambda *args, real=real, name=name, **kwargs: changes.append(name)
                            or real(*args, **kwargs))
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 2])})
    info = inspect_dataset(root)
    monkeypatch.undo()
    assert info.num_images == 2 and changes == []


def test_our_pixel_limit_stays_below_pillows():
    assert Limits().max_image_pixels < Image.MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match="must not exceed PIL.Image.MAX_IMAGE_PIXELS"):
        Limits(max_image_pixels=Image.MAX_IMAGE_PIXELS + 1)


def test_duplicate_stems(write_dataset):
    root = write_dataset({"a": blocks([0, 1])})
    Image.new("RGB", (16, 16)).save(root / "images" / "a.jpg")
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert "duplicate stem `a`" in " ".join(messages(error).values())


def test_every_problem_is_reported_at_once(write_dataset):
    root = write_dataset({"a": blocks([0, 9]), "b": blocks([0, 1])}, classes=["bg", "fg"])
    Image.fromarray(blocks([0, 1], size=8)).save(root / "masks" / "b.png")
    Image.fromarray(blocks([0, 1])).save(root / "masks" / "orphan.png")
    (root / "images" / "junk.txt").write_text("hello")
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert set(messages(error)) == {"masks/a.png", "masks/b.png", "masks/orphan.png", "images/junk.txt"}


def test_palette_masks_read_as_indices(write_dataset):
    mask = Image.fromarray(blocks([0, 1, 2])).convert("P")
    mask.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * 759)
    info = inspect_dataset(write_dataset({"a": mask}))
    assert info.num_classes == 3


def test_rgb_masks_map_through_class_colours(write_dataset):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:, 8:] = (255, 0, 0)
    rgb[0, 0] = (255, 255, 255)
    root = write_dataset({"a": rgb})
    (root / "classes.json").write_text(json.dumps({"classes": [{"name": "bg", "color": "#000000"},
                                                               {"name": "red", "color": "#ff0000"}],
                                                   "ignore_color": "#ffffff"}))
    info = inspect_dataset(root)
    assert info.num_classes == 2 and info.classes[1]["pixel_share"] == pytest.approx(128 / 255)
    index = load_index(root)
    values = index.label_table()[read_mask(root / "masks" / "a.png", index.mask_colors, index.ignore_color)]
    assert values[0, 0] == 255 and values[5, 12] == 1 and values[5, 2] == 0


def test_rgb_mask_with_unknown_colour_names_it(write_dataset):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:, 8:] = (0, 128, 255)
    root = write_dataset({"a": rgb})
    (root / "classes.json").write_text(json.dumps({"classes": [{"name": "bg", "color": "#000000"},
                                                               {"name": "red", "color": "#ff0000"}]}))
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert "#0080ff" in messages(error)["masks/a.png"]


def test_rgb_mask_without_class_colours_is_refused(write_dataset):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:, 8:] = (0, 128, 255)
    with pytest.raises(DatasetError) as error:
        inspect_dataset(write_dataset({"a": rgb}))
    assert "classes.json gives no class colours" in messages(error)["masks/a.png"]


def test_split_files_are_checked(write_dataset):
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 1]), "u": None},
                         splits={"train": ["a", "ghost"], "val": ["a", "u"]})
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    text = " | ".join(f"{file}: {message}" for file, message in error.value.errors)
    assert "lists `ghost`, which is not among the images" in text
    assert "lists `u`, which has no mask" in text
    assert "`a` is in both the train and the val split" in text


def test_splits_are_counted(write_dataset):
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 1]), "c": blocks([0, 1])},
                         splits={"train": ["a", "b"], "val": ["c"]})
    info = inspect_dataset(root)
    assert (info.num_train, info.num_val) == (2, 1)


def test_folder_without_a_dataset(tmp_path):
    with pytest.raises(DatasetError) as error:
        inspect_dataset(tmp_path)
    assert "no dataset found" in error.value.errors[0][1]


def test_no_masks_at_all(write_dataset):
    with pytest.raises(DatasetError) as error:
        inspect_dataset(write_dataset({"a": None}))
    assert "no masks found" in error.value.errors[0][1]


def test_limits_on_files_bytes_and_pixels(write_dataset):
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 1])})
    with pytest.raises(DatasetError, match="holds 4 files, more than the limit of 3"):
        inspect_dataset(root, Limits(max_files=3))
    with pytest.raises(DatasetError, match="bytes, more than the limit of 100"):
        inspect_dataset(root, Limits(max_bytes=100))
    with pytest.raises(DatasetError, match="16x16 pixels is more than the limit of 100"):
        inspect_dataset(root, Limits(max_image_pixels=100))


def test_classes_json_problems(write_dataset):
    root = write_dataset({"a": blocks([0, 1])})
    (root / "classes.json").write_text("{not json")
    with pytest.raises(DatasetError, match="classes.json: is not valid JSON"):
        inspect_dataset(root)
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "a"], "ignore_index": 1}))
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    text = str(error.value)
    assert "class names repeat" in text and "ignore_index 1 must not be a class index" in text


def test_colours_may_be_rgb_lists_as_in_mmsegmentation_and_voc_palettes(write_dataset):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:, 8:] = (128, 64, 128)
    rgb[0, 0] = (255, 255, 255)
    root = write_dataset({"a": rgb})
    (root / "classes.json").write_text(json.dumps({
        "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "road", "color": "#804080"}],
        "ignore_color": [255, 255, 255],
    }))
    info = inspect_dataset(root)
    assert [c["color"] for c in info.classes] == ["#000000", "#804080"]  # stored in one form
    assert info.classes[1]["pixel_share"] == pytest.approx(128 / 255)
    index = load_index(root)
    values = index.label_table()[read_mask(root / "masks" / "a.png", index.mask_colors, index.ignore_color)]
    assert values[0, 0] == 255 and values[5, 12] == 1


CLASSES_PROBLEMS = {
    "colour word": ({"classes": ["bg", "sky", {"name": "road", "color": "blue"}]},
                    'class 2 ("road"): colour must be "#rrggbb" or [r, g, b] with whole numbers 0-255; got "blue"'),
    "colour over 255": ({"classes": ["bg", {"name": "car", "color": [300, 0, 0]}]},
                        'class 1 ("car"): colour must be "#rrggbb" or [r, g, b] with whole numbers 0-255; '
                        'got [300, 0, 0]'),
    "two numbers": ({"classes": ["bg", {"name": "car", "color": [3, 0]}]}, 'class 1 ("car"): colour must be'),
    "fractions": ({"classes": ["bg", {"name": "car", "color": [0.5, 0, 0]}]}, 'class 1 ("car"): colour must be'),
    "no name": ({"classes": ["bg", {"color": "#ff0000"}]}, "class 1: has no `name`"),
    "name not text": ({"classes": ["bg", {"name": 7}]}, "class 1: name must be a non-empty text; got 7"),
    "empty name": ({"classes": ["bg", " "]}, 'class 1: name must be a non-empty text; got " "'),
    "entry not an object": ({"classes": ["bg", 5]}, 'class 1: expected a name or {"name": ..., "color": ...}; got 5'),
    "long name": ({"classes": ["bg", "x" * 101]}, "name is 101 characters long; at most 100 are allowed"),
    "control character": ({"classes": ["bg", "a\u0000b"]}, 'class 1 ("a\\u0000b"): name holds control characters'),
    "classes not a list": ({"classes": "bg, fg"}, '`classes` must be a list of names or of {"name": ..., "color": ...} '
                                                  'objects; got "bg, fg"'),
    "no classes key": ({"names": ["bg", "fg"]}, "has no `classes` list"),
    "ignore_index text": ({"classes": ["bg", "fg"], "ignore_index": "255"},
                          'ignore_index must be a whole number 0-65535 (usually 255); got "255"'),
    "ignore_index fraction": ({"classes": ["bg", "fg"], "ignore_index": 2.5}, "ignore_index must be a whole number"),
    "ignore_index a class": ({"classes": ["bg", "fg"], "ignore_index": 1}, "ignore_index 1 must not be a class index"),
    "ignore_color word": ({"classes": ["bg", "fg"], "ignore_color": "white"},
                          'ignore_color must be "#rrggbb" or [r, g, b] with whole numbers 0-255; got "white"'),
    "no classes": ({"classes": []}, "defines no classes"),
}


@pytest.mark.parametrize("problem", CLASSES_PROBLEMS)
def test_each_classes_json_problem_has_its_own_message(write_dataset, problem):
    payload, expected = CLASSES_PROBLEMS[problem]
    root = write_dataset({"a": blocks([0, 1])})
    (root / "classes.json").write_text(json.dumps(payload))
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    found = [message for file, message in error.value.errors if file == "classes.json"]
    assert any(expected in message for message in found), found
    assert not any("object has no attribute" in message or "Error" in message for message in found)


@pytest.mark.parametrize("content, expected", [
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b"[" * 100_000, "nesting too deep"),
    (b'{"classes": ["bg", "fg"],}', "is not valid JSON (Expecting property name enclosed in double quotes at line 1"),
])
def test_unreadable_classes_json(write_dataset, content, expected):
    root = write_dataset({"a": blocks([0, 1])})
    (root / "classes.json").write_bytes(content)
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert expected in messages(error)["classes.json"]


def test_classes_json_that_is_a_folder(write_dataset):
    root = write_dataset({"a": blocks([0, 1])})
    (root / "classes.json").mkdir()
    with pytest.raises(DatasetError) as error:
        inspect_dataset(root)
    assert messages(error)["classes.json"] == "is a folder, not a file"


def test_a_split_file_that_is_not_text(write_dataset):
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 1])}, splits={"train": ["a"]})
    (root / "splits" / "val.txt").write_bytes(b"\xff\xfe\x00b")
    with pytest.raises(DatasetError, match="a split file of the images-masks layout is not UTF-8 text"):
        inspect_dataset(root)


def test_zip_with_a_wrapping_folder(write_dataset, tmp_path):
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 2])})
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in root.rglob("*"):
            zf.write(path, f"mydata/{path.relative_to(root).as_posix()}")
    info = inspect_dataset(archive)
    assert info.num_images == 2 and info.num_classes == 3


def test_voc_layout(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    palette = [channel for i in range(256) for channel in bytes.fromhex(voc_color(i)[1:])]
    for stem, label in (("2007_000032", 1), ("2007_000033", 15), ("2007_000039", 20)):
        Image.new("RGB", (20, 16), (120, 90, 60)).save(root / "JPEGImages" / f"{stem}.jpg")
        mask = np.zeros((16, 20), dtype=np.uint8)
        mask[4:12, 4:16] = label
        mask[3, 3:17] = 255  # the VOC object border
        image = Image.fromarray(mask, "P")
        image.putpalette(palette)
        image.save(root / "SegmentationClass" / f"{stem}.png")
    Image.new("RGB", (20, 16)).save(root / "JPEGImages" / "2008_000001.jpg")  # no mask: unlabelled
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n2007_000033\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000039\n")
    info = inspect_dataset(tmp_path)  # the VOCdevkit/VOC2012 wrapper is stepped into
    assert info.layout == "voc" and info.num_classes == 21
    assert info.classes[15]["name"] == "person" and info.classes[15]["color"] == "#c08080"
    assert (info.num_labeled, info.num_unlabeled, info.num_train, info.num_val) == (3, 1, 2, 1)


def test_cityscapes_layout(tmp_path):
    for split, city, frame in (("train", "aachen", "aachen_000000_000019"), ("val", "lindau", "lindau_000000_000019")):
        images = tmp_path / "leftImg8bit" / split / city
        labels = tmp_path / "gtFine" / split / city
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        Image.new("RGB", (32, 16)).save(images / f"{frame}_leftImg8bit.png")
        mask = np.full((16, 32), 255, dtype=np.uint8)
        mask[8:, :] = 0
        mask[:8, :16] = 18
        Image.fromarray(mask).save(labels / f"{frame}_gtFine_labelTrainIds.png")
        Image.fromarray(mask).save(labels / f"{frame}_gtFine_labelIds.png")  # other label kinds are skipped
    info = inspect_dataset(tmp_path)
    assert info.layout == "cityscapes" and info.num_classes == 19
    assert (info.num_train, info.num_val) == (1, 1)
    assert info.classes[18]["name"] == "bicycle" and info.classes[18]["pixel_share"] == pytest.approx(1 / 3)
    assert load_index(tmp_path).train_ids == ["aachen_000000_000019"]


def test_description_is_cached_and_refreshed_when_files_change(write_dataset, monkeypatch):
    root = write_dataset({"a": blocks([0, 1]), "b": blocks([0, 2])})
    inspect_dataset(root)
    assert (root / "dataset.json").exists()
    calls = []
    real = inspect_module.cached_description

    def counting(index):
        found = real(index)
        calls.append(found is not None)
        return found

    monkeypatch.setattr(inspect_module, "cached_description", counting)
    assert load_index(root).num_classes == 3
    Image.fromarray(blocks([0, 3])).save(root / "masks" / "b.png")
    assert load_index(root).num_classes == 4  # the changed mask made the description stale
    assert calls == [True, False]


def test_load_index_refuses_a_zip(tmp_path):
    archive = tmp_path / "data.zip"
    zipfile.ZipFile(archive, "w").close()
    with pytest.raises(DatasetError, match="extract the zip first"):
        load_index(archive)
