from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp.datasets.deletion import DatasetInUse, delete_dataset
from webapp.datasets.forms import DatasetUploadForm
from webapp.datasets.ingest import UploadError, ingest_zip
from webapp.datasets.models import Dataset
from webapp.teams.access import can_write, get_for_user, get_rw_for_user, visible


@login_required
def dataset_list(request):
    form = DatasetUploadForm(user=request.user)
    datasets = visible(Dataset.objects.select_related("team"), request.user)
    return render(request, "datasets/list.html", {"datasets": datasets, "form": form})


@login_required
def dataset_upload(request):
    form = DatasetUploadForm(request.POST or None, request.FILES or None, user=request.user)
    upload_errors: list[tuple[str, str]] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dataset = ingest_zip(data["team"], data["name"], data["archive"], request.user, data["description"])
        except UploadError as error:
            upload_errors = error.errors
        else:
            messages.success(request, f"Dataset {dataset.name} uploaded: {dataset.num_images} images.")
            return redirect("datasets:detail", pk=dataset.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "datasets/upload.html", {"form": form, "upload_errors": upload_errors}, status=status)


@login_required
def dataset_detail(request, pk):
    dataset = get_for_user(Dataset.objects.select_related("team"), request.user, pk)
    experiments = dataset.experiments.order_by("-created_at")[:20]
    context = {"dataset": dataset, "experiments": experiments, "can_write": can_write(dataset.team, request.user)}
    return render(request, "datasets/detail.html", context)


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
