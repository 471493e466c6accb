from django.contrib import admin

from webapp.review.models import Comment, Star, Tag


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["id", "author", "experiment", "sweep", "created_at"]
    list_select_related = ["author", "experiment", "sweep"]
    search_fields = ["body", "author__username"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "team"]
    list_filter = ["team"]
    search_fields = ["name"]


@admin.register(Star)
class StarAdmin(admin.ModelAdmin):
    list_display = ["user", "experiment", "sweep", "created_at"]
