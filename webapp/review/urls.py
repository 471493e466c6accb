from django.urls import path

from webapp.review import views

app_name = "review"
urlpatterns = [
    path("<str:kind>/<int:pk>/comment/", views.comment, name="comment"),
    path("<str:kind>/<int:pk>/tags/", views.tags, name="tags"),
    path("<str:kind>/<int:pk>/star/", views.star, name="star"),
    path("comments/<int:comment_id>/delete/", views.delete_comment, name="delete-comment"),
]
