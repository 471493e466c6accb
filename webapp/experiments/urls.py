from django.urls import path

from webapp.experiments import compare_views, views

app_name = "experiments"
urlpatterns = [
    path("", views.experiment_list, name="list"),
    path("new/", views.experiment_new, name="new"),
    path("compare/", compare_views.experiment_compare, name="compare"),
    path("<int:pk>/", views.experiment_detail, name="detail"),
    path("<int:pk>/cancel/", views.experiment_cancel, name="cancel"),
    path("<int:pk>/retry/", views.experiment_retry, name="retry"),
    path("<int:pk>/move/", views.experiment_move, name="move"),
]
