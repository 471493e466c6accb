from django.contrib import admin

from webapp.datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "num_images", "num_labeled", "num_unlabeled", "created_at")
    list_filter = ("team",)
