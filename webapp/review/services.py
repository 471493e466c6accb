"""What a team member may do in review, in one place: the views and the API call these.

Who may do what (``webapp.teams.access`` decides membership and roles):
- see, comment and star: every member, read-only reviewers included;
- edit or delete a comment: its author;
- tag: members who may write (tags drive the experiments list's filters for everyone).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Model, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from webapp.experiments.models import Experiment
from webapp.review.models import MAX_COMMENT_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, Comment, Star, Tag
from webapp.sweeps.models import Sweep
from webapp.teams.access import can_write, get_for_user, require_write, teams_of

#: What a review row can hang on, by the name the URLs use.
TARGETS: dict[str, type[Model]] = {"experiments": Experiment, "sweeps": Sweep}
TAG_PATTERN = re.compile(rf"^[\w][\w .:+/-]{{0,{MAX_TAG_LENGTH - 1}}}$")


def target_for_user(kind: str, pk, user) -> Model:
    """The experiment or sweep ``pk`` if ``user`` may see it; 404 otherwise (and for an unknown kind)."""
    if kind not in TARGETS:
        raise Http404("No such kind of object")
    return get_for_user(TARGETS[kind].objects.select_related("team"), user, pk)


def _field(target: Model) -> str:
    return "experiment" if isinstance(target, Experiment) else "sweep"


def comments_on(target: Model):
    return Comment.objects.filter(**{_field(target): target}).select_related("author")


def visible_comments(user):
    """The comments on experiments and sweeps of ``user``'s teams."""
    teams = teams_of(user)
    return Comment.objects.filter(Q(experiment__team__in=teams) | Q(sweep__team__in=teams)).select_related(
        "author", "experiment__team", "sweep__team")


def comment_for_user(user, pk) -> Comment:
    try:
        return visible_comments(user).get(pk=pk)
    except (Comment.DoesNotExist, ValueError):
        raise Http404("No such comment") from None


def clean_body(body) -> str:
    if not isinstance(body, str) or not body.strip():
        raise ValidationError({"body": "write something: the comment is empty"})
    if len(body) > MAX_COMMENT_LENGTH:
        raise ValidationError({"body": f"at most {MAX_COMMENT_LENGTH:,} characters (this one has {len(body):,})"})
    if "\x00" in body:
        raise ValidationError({"body": "contains a NUL character"})
    return body


def add_comment(target: Model, user, body) -> Comment:
    return Comment.objects.create(**{_field(target): target}, author=user, body=clean_body(body))


def require_author(comment: Comment, user) -> None:
    if comment.author_id != user.pk:
        raise PermissionDenied("Only its author can change or delete a comment")


def edit_comment(comment: Comment, user, body) -> Comment:
    require_author(comment, user)
    comment.body, comment.edited_at = clean_body(body), timezone.now()
    comment.save(update_fields=["body", "edited_at"])
    return comment


def delete_comment(comment: Comment, user) -> None:
    require_author(comment, user)
    comment.delete()


def clean_tags(names: Iterable) -> list[str]:
    """Distinct tag names in the order given; a bad one is refused naming it."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ValidationError({"tags": "expected a list of tag names"})
    cleaned: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise ValidationError({"tags": f"a tag is a name, not {type(name).__name__}"})
        name = " ".join(name.split())
        if not TAG_PATTERN.match(name):
            shown = name[:MAX_TAG_LENGTH] + ("…" if len(name) > MAX_TAG_LENGTH else "")
            raise ValidationError({"tags": f"{shown!r} is not a tag: 1-{MAX_TAG_LENGTH} letters, digits, spaces "
                                           "or . : + / - _, starting with a letter or digit"})
        if name not in cleaned:
            cleaned.append(name)
    if len(cleaned) > MAX_TAGS:
        raise ValidationError({"tags": f"at most {MAX_TAGS} tags (got {len(cleaned)})"})
    return cleaned


def set_tags(target: Model, user, names: Iterable) -> list[str]:
    """Replace the target's tags; tags no longer used anywhere in the team are removed."""
    require_write(target.team, user)
    wanted = clean_tags(names)
    with transaction.atomic():
        tags = []
        for name in wanted:
            try:
                with transaction.atomic():
                    tag, _ = Tag.objects.get_or_create(team=target.team, name=name)
            except IntegrityError:  # made by a concurrent request between the get and the create
                tag = Tag.objects.get(team=target.team, name=name)
            tags.append(tag)
        target.tags.set(tags)
        Tag.objects.filter(team=target.team, experiments=None, sweeps=None).delete()
    return tag_names(target)


def tag_names(target: Model) -> list[str]:
    return [tag.name for tag in target.tags.all()]


def set_star(target: Model, user, starred: bool) -> int:
    """Star (or unstar) for ``user``; returns the target's star count. Idempotent."""
    field = _field(target)
    if starred:
        Star.objects.get_or_create(user=user, **{field: target})
    else:
        Star.objects.filter(user=user, **{field: target}).delete()
    return Star.objects.filter(**{field: target}).count()


def is_starred(target: Model, user) -> bool:
    return Star.objects.filter(user=user, **{_field(target): target}).exists()


def review_context(kind: str, target: Model, user) -> dict:
    """What a page's review panel shows (``review/_panel.html``)."""
    return {
        "kind": kind, "target": target, "comments": comments_on(target), "tags": tag_names(target),
        "starred": is_starred(target, user), "stars": Star.objects.filter(**{_field(target): target}).count(),
        "can_tag": can_write(target.team, user),
    }


def _count_of(model, field: str):
    """How many ``model`` rows point at the outer row: a correlated count, so a filtered,
    paginated list pays only for the rows of its page (joins would multiply rows)."""
    rows = model.objects.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(rows), 0)


def with_review(queryset, user):
    """``queryset`` with each row's tags, star and comment counts and whether ``user`` starred it
    (the API's ``ReviewFields`` and the list pages read these)."""
    field = "experiment" if queryset.model is Experiment else "sweep"
    return queryset.prefetch_related(Prefetch("tags", queryset=Tag.objects.only("name"))).annotate(
        star_count=_count_of(Star, field),
        comment_count=_count_of(Comment, field),
        starred=Exists(Star.objects.filter(user=user, **{field: OuterRef("pk")})),
    )
