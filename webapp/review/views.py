"""The review panel's forms (comment, delete a comment, tags, star): each posts here and
returns to the page it came from, with the refusal, if any, as a message."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from webapp.review import services

PAGES = {"experiments": "experiments:detail", "sweeps": "sweeps:detail"}


def _back(kind: str, target, anchor: str = "review"):
    return redirect(f"{reverse(PAGES[kind], args=[target.pk])}#{anchor}")


def _refusal(request, error: ValidationError) -> None:
    for message in (error.message_dict.values() if hasattr(error, "error_dict") else [error.messages]):
        messages.error(request, " ".join(message))


@login_required
@require_POST
def comment(request, kind, pk):
    target = services.target_for_user(kind, pk, request.user)
    try:
        added = services.add_comment(target, request.user, request.POST.get("body", ""))
    except ValidationError as error:
        _refusal(request, error)
        return _back(kind, target, "comment-form")
    return _back(kind, target, f"comment-{added.pk}")


@login_required
@require_POST
def delete_comment(request, comment_id):
    found = services.comment_for_user(request.user, comment_id)
    kind = "experiments" if found.experiment_id else "sweeps"
    target = found.target
    services.delete_comment(found, request.user)
    messages.success(request, "Comment deleted.")
    return _back(kind, target)


@login_required
@require_POST
def tags(request, kind, pk):
    target = services.target_for_user(kind, pk, request.user)
    names = [name for name in request.POST.get("tags", "").split(",") if name.strip()]
    try:
        services.set_tags(target, request.user, names)
    except ValidationError as error:
        _refusal(request, error)
    return _back(kind, target)


@login_required
@require_POST
def star(request, kind, pk):
    target = services.target_for_user(kind, pk, request.user)
    services.set_star(target, request.user, request.POST.get("starred") == "true")
    return _back(kind, target)
