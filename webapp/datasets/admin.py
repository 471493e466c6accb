from django.contrib import admin, messages

from webapp.datasets.deletion import DatasetInUse, delete_dataset
from webapp.datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    """Deletion goes through ``delete_dataset`` here too, so the files go with the row."""

    list_display = ("name", "team", "num_images", "num_labeled", "num_unlabeled", "created_at")
    list_filter = ("team",)

    def delete_model(self, request, obj):
        try:
            delete_dataset(obj)
        except DatasetInUse as error:
            self.message_user(request, str(error), messages.ERROR)

    def delete_queryset(self, request, queryset):
        for dataset in queryset:
            self.delete_model(request, dataset)
