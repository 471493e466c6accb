from django.urls import path

from webapp.teams import views

app_name = "teams"
urlpatterns = [path("", views.team_list, name="list")]
