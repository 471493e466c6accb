from __future__ import annotations


class DatasetError(ValueError):
    """Every problem found in a dataset; ``errors`` is a list of (file, message)."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = list(errors)
        shown = "; ".join(f"{file}: {message}" if file else message for file, message in self.errors[:20])
        more = f" (and {len(self.errors) - 20} more)" if len(self.errors) > 20 else ""
        super().__init__(shown + more)
