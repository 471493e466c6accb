from django.contrib import admin

from webapp.sweeps.models import Sweep


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "dataset", "created_by", "created_at")
    list_filter = ("team",)
    search_fields = ("name",)
    # Its runs were expanded from the grid: editing it afterwards would make the table lie.
    readonly_fields = ("grid", "dataset", "created_by", "created_at")
