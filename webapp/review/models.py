"""Team review of runs and sweeps: comment threads, tags and stars.

Each row belongs to exactly one experiment or one sweep (a check constraint says so),
which keeps every query a plain indexed foreign key; the team is the target's team, so
who may see a comment is decided by ``webapp.teams.access`` on its target.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q

from webapp.experiments.models import Experiment
from webapp.sweeps.models import Sweep
from webapp.teams.models import Team

#: A comment is a review note, not a document: a few pages of markdown at most.
MAX_COMMENT_LENGTH = 10_000
MAX_TAG_LENGTH = 40
#: Tags on one experiment or sweep; more is a search index, not a label.
MAX_TAGS = 20

_ONE_TARGET = Q(experiment__isnull=False, sweep__isnull=True) | Q(experiment__isnull=True, sweep__isnull=False)


class Tag(models.Model):
    """A team's label; tagged experiments and sweeps are its ``experiments`` and ``sweeps``."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=MAX_TAG_LENGTH)
    experiments = models.ManyToManyField(Experiment, related_name="tags", blank=True)
    sweeps = models.ManyToManyField(Sweep, related_name="tags", blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="one_tag_name_per_team")]

    def __str__(self) -> str:
        return self.name


class Comment(models.Model):
    experiment = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.CASCADE, related_name="comments")
    sweep = models.ForeignKey(Sweep, null=True, blank=True, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="comments")
    body = models.TextField(max_length=MAX_COMMENT_LENGTH, help_text="Markdown (CommonMark, raw HTML is shown as text)")
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.CheckConstraint(condition=_ONE_TARGET, name="comment_has_one_target")]

    def __str__(self) -> str:
        return f"comment {self.pk} by {self.author}"

    @property
    def target(self):
        return self.experiment or self.sweep


class Star(models.Model):
    """One user's mark on a run or sweep worth coming back to; the count is the team's."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stars")
    experiment = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.CASCADE, related_name="stars")
    sweep = models.ForeignKey(Sweep, null=True, blank=True, on_delete=models.CASCADE, related_name="stars")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=_ONE_TARGET, name="star_has_one_target"),
            models.UniqueConstraint(fields=["user", "experiment"], name="one_star_per_user_and_experiment"),
            models.UniqueConstraint(fields=["user", "sweep"], name="one_star_per_user_and_sweep"),
        ]
