"""Serializer fields that only ever see what the asking user may see (``webapp.teams.access``)."""
from rest_framework import serializers

from webapp.teams.access import teams_of, visible


class VisibleRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary key among the rows of ``model`` visible to the request's user (another team's is "does not exist")."""

    def __init__(self, model, **kwargs):
        self.model = model
        super().__init__(queryset=model.objects.all(), **kwargs)

    def get_queryset(self):
        return visible(self.model.objects.all(), self.context["request"].user)


class MemberTeamField(serializers.PrimaryKeyRelatedField):
    """A team the request's user belongs to."""

    def __init__(self, **kwargs):
        from webapp.teams.models import Team

        super().__init__(queryset=Team.objects.all(), **kwargs)

    def get_queryset(self):
        return teams_of(self.context["request"].user)
