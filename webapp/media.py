"""Media files (prediction overlays) served only to members of the owning team."""
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404

from webapp.experiments.models import Experiment
from webapp.teams.access import visible


@login_required
def serve_media(request, path: str):
    parts = Path(path).parts
    # Only experiment outputs are served: experiments/<id>/predictions/...
    if len(parts) < 3 or parts[0] != "experiments" or parts[2] != "predictions" or ".." in parts:
        raise Http404("Not found")
    if not visible(Experiment.objects.filter(pk=parts[1] if parts[1].isdigit() else -1), request.user).exists():
        raise Http404("Not found")
    full = Path(settings.MEDIA_ROOT) / path
    if not full.is_file():
        raise Http404("Not found")
    return FileResponse(open(full, "rb"))
