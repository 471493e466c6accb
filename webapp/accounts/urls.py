from django.urls import path

from webapp.accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.account, name="account"),
    path("tokens/<int:pk>/revoke/", views.revoke_token, name="revoke-token"),
]
