"""What a run offers for download: its checkpoints (``best.pt``, the best validation mIoU;
``last.pt``, the resumable state) once the trainer has written them, and its metrics as
CSV once a point is stored. The page shows a link only where the file or the points exist."""
from webapp.experiments.models import Experiment

CHECKPOINTS = ("best", "last")


def checkpoints(experiment: Experiment) -> dict[str, bool]:
    """{"best": True, "last": False}: which checkpoint files the run has written so far."""
    return {which: (experiment.output_dir / f"{which}.pt").is_file() for which in CHECKPOINTS}


def has_metrics(experiment: Experiment) -> bool:
    return experiment.metric_points.exists()
