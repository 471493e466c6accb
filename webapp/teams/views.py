from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.shortcuts import render

from webapp.teams.access import teams_of
from webapp.teams.models import Membership


@login_required
def team_list(request):
    """The user's teams with their members and roles; teams are managed in the admin."""
    members = Prefetch("memberships", queryset=Membership.objects.select_related("user").order_by("user__username"))
    teams = teams_of(request.user).prefetch_related(members).order_by("name")
    return render(request, "teams/list.html", {"teams": teams})
