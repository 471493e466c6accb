from django.contrib import admin

from webapp.transfer.models import TransferEvaluation


@admin.register(TransferEvaluation)
class TransferEvaluationAdmin(admin.ModelAdmin):
    """Read-only: a status changes only in webapp.transfer.lifecycle; an admin may delete one."""

    list_display = ("experiment", "dataset", "status", "miou", "in_domain_miou", "worker", "requested_at")
    list_filter = ("status", "queue")
    search_fields = ("experiment__name", "dataset__name")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False
