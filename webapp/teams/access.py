"""Who may see and change what: the one place every view and API call asks.

After healthchecks' ``_get_check_for_user``: an object of another team is a 404 (its
existence is not revealed); a read-only member who tries to change something gets 403.
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from webapp.teams.models import Membership, Team


def teams_of(user) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user)


def writable_teams_of(user) -> QuerySet[Team]:
    # One filter() call: both conditions hold on the same membership row.
    return Team.objects.filter(memberships__user=user,
                               memberships__role__in=[Membership.Role.OWNER, Membership.Role.MEMBER])


def visible(queryset: QuerySet, user, team: str = "team") -> QuerySet:
    """The rows of ``queryset`` that ``user`` may see; ``team`` is the lookup of the row's team
    (``"experiment__team"`` for what belongs to a run).

    A subquery on the user's teams rather than a join: no row is repeated, so no DISTINCT,
    and a paginated list counts its rows without computing its annotations for each.
    """
    return queryset.filter(**{f"{team}__in": teams_of(user).values("pk")})


def get_for_user(queryset: QuerySet, user, pk) -> Model:
    try:
        return visible(queryset, user).get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError):
        raise Http404(f"No such {queryset.model._meta.verbose_name}") from None


def get_rw_for_user(queryset: QuerySet, user, pk) -> Model:
    obj = get_for_user(queryset, user, pk)
    require_write(obj.team, user)
    return obj


def can_write(team: Team, user) -> bool:
    return Membership.objects.filter(team=team, user=user).exclude(role=Membership.Role.VIEWER).exists()


def require_write(team: Team, user) -> None:
    if not can_write(team, user):
        raise PermissionDenied("Your role in this team is read-only")
