"""Media files served only to members of the owning team.

Three kinds are served: prediction overlays (``experiments/<id>/predictions/...``),
dataset preview sheets (``datasets/<folder>.preview.png``) and the sample pictures of
the dataset page (``datasets/<folder>.samples/NN-image.png``, ``NN-labels.png``);
nothing else under MEDIA_ROOT (datasets, checkpoints) is reachable through the web.
"""
import re
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404

from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment
from webapp.teams.access import visible

PREVIEW_SUFFIX = ".preview.png"
SAMPLES_SUFFIX = ".samples"
SAMPLE_FILE = re.compile(r"\d+-(image|labels)\.png")


def _allowed(parts: tuple[str, ...], user) -> bool:
    if ".." in parts:
        return False
    if len(parts) >= 4 and parts[0] == "experiments" and parts[1].isdigit() and parts[2] == "predictions":
        return visible(Experiment.objects.filter(pk=int(parts[1])), user).exists()
    if len(parts) == 2 and parts[0] == "datasets" and parts[1].endswith(PREVIEW_SUFFIX):
        folder = f"datasets/{parts[1][: -len(PREVIEW_SUFFIX)]}"
        return visible(Dataset.objects.filter(storage_path=folder), user).exists()
    if (len(parts) == 3 and parts[0] == "datasets" and parts[1].endswith(SAMPLES_SUFFIX)
            and SAMPLE_FILE.fullmatch(parts[2])):
        folder = f"datasets/{parts[1][: -len(SAMPLES_SUFFIX)]}"
        return visible(Dataset.objects.filter(storage_path=folder), user).exists()
    return False


@login_required
def serve_media(request, path: str):
    if not _allowed(Path(path).parts, request.user):
        raise Http404("Not found")
    full = Path(settings.MEDIA_ROOT) / path
    if not full.is_file():
        raise Http404("Not found")
    return FileResponse(open(full, "rb"))
