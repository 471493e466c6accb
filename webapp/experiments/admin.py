from django.contrib import admin

from webapp.experiments.models import Evaluation, Experiment, ExperimentEvent


class EventInline(admin.TabularInline):
    model = ExperimentEvent
    extra = 0
    readonly_fields = ("kind", "message", "created_at")


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "dataset", "status", "current_step", "total_steps", "best_miou", "created_at")
    list_filter = ("status", "team")
    inlines = [EventInline]


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ("experiment", "step", "miou", "pixel_accuracy")
