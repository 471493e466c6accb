from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from engine.data import DatasetError
from webapp.datasets.deletion import DatasetInUse, delete_dataset
from webapp.datasets.editing import UpdateRefused, update_dataset
from webapp.datasets.forms import ClassesForm, DatasetUploadForm
from webapp.datasets.ingest import ingest_zip
from webapp.datasets.models import Dataset
from webapp.datasets.samples import sample_pictures
from webapp.datasets.summary import class_table, split_summary
from webapp.teams.access import can_write, get_for_user, get_rw_for_user, visible

DATASETS_PER_PAGE = 50
RUNS_SHOWN = 50


def _wants_json(request) -> bool:
    """The upload page's script sends the form itself and reads the answer as JSON."""
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


@login_required
def dataset_list(request):
    datasets = visible(Dataset.objects.select_related("team", "created_by").defer("info"), request.user)
    page = Paginator(datasets, DATASETS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "datasets/list.html", {"page": page, "datasets": page.object_list})


@login_required
def dataset_upload(request):
    form = DatasetUploadForm(request.POST or None, request.FILES or None, user=request.user)
    problems: list[dict[str, str]] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dataset = ingest_zip(data["team"], data["name"], data["archive"], request.user, data["description"])
        except DatasetError as error:
            problems = error.problems
        else:
            messages.success(request, f"Dataset {dataset.name} uploaded: {dataset.num_images} images.")
            if _wants_json(request):
                return JsonResponse({"redirect": reverse("datasets:detail", args=[dataset.pk])}, status=201)
            return redirect("datasets:detail", pk=dataset.pk)
    status = 400 if request.method == "POST" else 200
    if _wants_json(request) and request.method == "POST":
        return JsonResponse({"fields": {name: list(errors) for name, errors in form.errors.items()},
                             "problems": problems}, status=status)
    context = {"form": form, "problems": problems, "max_upload_bytes": settings.SEGLAB_MAX_UPLOAD_BYTES}
    return render(request, "datasets/upload.html", context, status=status)


@login_required
def dataset_detail(request, pk):
    dataset = get_for_user(Dataset.objects.select_related("team", "created_by"), request.user, pk)
    writable = can_write(dataset.team, request.user)
    form = ClassesForm(classes=class_table(dataset)) if writable else None
    return _render_detail(request, dataset, form, writable)


@login_required
@require_POST
def dataset_classes(request, pk):
    dataset = get_rw_for_user(Dataset.objects.select_related("team", "created_by"), request.user, pk)
    form = ClassesForm(request.POST, classes=class_table(dataset))
    if form.is_valid():
        changes = form.changes()
        try:
            if changes:
                update_dataset(dataset, classes=changes)
        except UpdateRefused as error:
            form.class_problems = error.by_class
            if not error.by_class:
                form.add_error(None, str(error))
        else:
            messages.success(request, f"Classes saved: {len(changes)} changed." if changes else "Nothing changed.")
            return redirect("datasets:detail", pk=pk)
    return _render_detail(request, dataset, form, True, status=400)


def _render_detail(request, dataset, form, writable, status=200):
    experiments = dataset.experiments.order_by("-created_at")
    classes = class_table(dataset)
    context = {"dataset": dataset, "experiments": experiments[:RUNS_SHOWN], "num_experiments": experiments.count(),
               "can_write": writable, "form": form, "splits": split_summary(dataset),
               "class_rows": form.rows() if form else [(entry, None, None, []) for entry in classes],
               "samples": sample_pictures(dataset),
               "overlay_classes": classes,
               # Only what the overlay script needs: the page's scripts carry no user text.
               "overlay_colors": [{"index": c["index"], "color": c["color"]} for c in classes]}
    return render(request, "datasets/detail.html", context, status=status)


@login_required
@require_POST
def dataset_delete(request, pk):
    dataset = get_rw_for_user(Dataset.objects.select_related("team"), request.user, pk)
    try:
        delete_dataset(dataset)
    except DatasetInUse as error:
        messages.error(request, str(error))
        return redirect("datasets:detail", pk=pk)
    messages.success(request, f"Dataset {dataset.name} deleted.")
    return redirect("datasets:list")
