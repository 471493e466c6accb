"""Loading local weights strictly: missing and unexpected keys are reported, never skipped."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class WeightsError(ValueError):
    pass


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    # Checkpoints often wrap the weights: {"state_dict": ...} or {"model": ...}.
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    return state


def load_state_dict_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{key} (file {tuple(state[key].shape)}, model {tuple(own[key].shape)})"
        for key in set(own) & set(state)
        if tuple(state[key].shape) != tuple(own[key].shape)
    )
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches", mismatched)):
            if keys:
                shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        raise WeightsError(f"{source} does not fit this model: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def load_weights(module: nn.Module, path: str | Path) -> None:
    load_state_dict_strict(module, read_state_dict(path), str(path))
