from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from webapp.accounts.forms import TokenForm
from webapp.accounts.models import ApiToken
from webapp.teams.models import Membership


@login_required
def account(request):
    """The user's teams and API tokens; a new token's key is shown on this page once."""
    form = TokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        token, new_key = ApiToken.issue(request.user, form.cleaned_data["name"])
        form = TokenForm()
    context = {
        "form": form, "new_key": new_key, "tokens": request.user.api_tokens.all(),
        "memberships": Membership.objects.filter(user=request.user).select_related("team").order_by("team__name"),
    }
    return render(request, "accounts/account.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def revoke_token(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token.delete()
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("accounts:account")
