"""What an upload may hold: the limits that refuse zip bombs, decompression bombs and huge catalogues.

Read by the zip extractor (``engine.data.extract``) and the validator
(``engine.data.inspect``), which enforce them.
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Limits:
    """Refuse uploads that would fill the disk (zip bombs) or the catalogue."""

    max_files: int = 100_000
    max_bytes: int = 20 * 1024**3  # uncompressed
    max_image_pixels: int = 64 * 1024 * 1024
    #: Images and masks are already compressed (PNG, JPEG): a member that deflates more
    #: than this is a bomb, not a dataset. Checked on members above ``ratio_min_bytes``.
    max_compression_ratio: float = 100.0
    ratio_min_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        # Pillow warns from Image.open above MAX_IMAGE_PIXELS and refuses above twice that;
        # a lower limit of ours refuses the warning zone in our own words, from the header.
        if Image.MAX_IMAGE_PIXELS is not None and self.max_image_pixels > Image.MAX_IMAGE_PIXELS:
            raise ValueError(f"max_image_pixels must not exceed PIL.Image.MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS})")
