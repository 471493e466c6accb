"""bench/reference.py --official: the official code imported from a clone, in its layout, beside ours.

The repositories themselves are not shipped (nor fetched): each clone here is a stand-in with
the official file layout and names whose network is ours, so the parameter counts agree and
what is tested is the import, the single-device BatchNorm, the config and the heads' loss.
"""
from __future__ import annotations

import json
import textwrap

import pytest

from bench.reference import main
from tests.engine.conftest import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

DDRNET = """
    import torch.nn as nn
    import torch.nn.functional as F

    from engine.models import build_model

    BatchNorm2d = nn.SyncBatchNorm


    class BasicBlock:
        pass


    class Official(nn.Module):  # the official DualResNet(augment=True): [main, auxiliary] at 1/8
        def __init__(self, classes):
            super().__init__()
            self.net = build_model("ddrnet23_slim", classes)

        def forward(self, x):
            outputs = self.net.forward_train(x)
            aux = outputs["out"] if outputs["aux"] is None else outputs["aux"]
            return [F.avg_pool2d(outputs["out"], 8), F.avg_pool2d(aux, 8)]


    def DualResNet(block, layers, num_classes, planes, spp_planes, head_planes, augment):
        assert BatchNorm2d is nn.BatchNorm2d, "built before the bench put BatchNorm2d in SyncBatchNorm's place"
        assert (block, layers, planes, spp_planes, head_planes) == (BasicBlock, [2, 2, 2, 2], 32, 128, 64)
        assert augment
        return Official(num_classes)
"""
HRNET_INIT = "raise ImportError('the package __init__ imports the repository\\'s other models')\n"
HRNET_BN = "import torch.nn as nn\nBatchNorm2d_class = BatchNorm2d = nn.SyncBatchNorm\n"
HRNET = """
    import torch.nn as nn

    from engine.models import build_model

    from .bn_helper import BatchNorm2d, BatchNorm2d_class


    def get_seg_model(cfg):
        assert BatchNorm2d is nn.BatchNorm2d and BatchNorm2d_class is nn.BatchNorm2d
        assert cfg.MODEL.EXTRA.FINAL_CONV_KERNEL == 1
        assert cfg.MODEL.EXTRA["STAGE4"]["NUM_CHANNELS"] == [18, 36, 72, 144]
        return build_model("hrnetv2_w18_small", cfg.DATASET.NUM_CLASSES)
"""


def write(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return str(root)


def test_official_code_in_a_clone_runs_beside_ours_with_identical_parameters(tmp_path):
    ddrnet = write(tmp_path / "DDRNet", {"segmentation/DDRNet_23_slim.py": DDRNET})
    hrnet = write(tmp_path / "HRNet", {"lib/models/__init__.py": HRNET_INIT, "lib/models/bn_helper.py": HRNET_BN,
                                       "lib/models/seg_hrnet.py": HRNET})
    path = tmp_path / "official.json"

    code = main(["--pairs", "--official", "ddrnet23_slim", ddrnet, "--official", "hrnetv2_w18_small", hrnet,
                 "--size", "64x64", "--warmup", "0", "--runs", "1", "--json", str(path)])

    results = json.loads(path.read_text())
    assert code == 0 and "transformers" not in results["settings"]  # no packaged pair, no transformers needed
    rows = results["rows"]
    assert [row["model"] for row in rows] == ["ddrnet23_slim", "hrnetv2_w18_small"]
    assert rows[0]["reference"] == "official code (github.com/ydhongHIT/DDRNet)"
    for row in rows:
        assert row["params"] == row["reference_params"]
        assert row["infer_ratio"] == pytest.approx(row["infer_ms"] / row["infer_ms_reference"], rel=0.05, abs=0.01)


@pytest.mark.parametrize(("argv", "message"), [
    (["--official", "unet", "."], "unet/unet_model.py is not in it (clone github.com/milesial/Pytorch-UNet)"),
    (["--official", "ddrnet99", "."], "choose from ddrnet23_slim, hrnetv2_w18_small, unet"),
])
def test_a_missing_or_unknown_official_code_is_named_before_anything_is_timed(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--pairs", *argv])

    assert exit_.value.code == 2 and message in capsys.readouterr().err
