from django.contrib import admin

from webapp.accounts.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Revoking is deleting; keys are never shown (only their hash is stored)."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at")
    list_filter = ("user",)
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    search_fields = ("name", "user__username", "prefix")

    def has_add_permission(self, request):
        return False  # a key is issued on the user's account page, where it is shown once
