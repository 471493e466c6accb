from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from webapp.health import healthz
from webapp.media import serve_media

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="experiments:list", permanent=False)),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("datasets/", include("webapp.datasets.urls")),
    path("experiments/", include("webapp.experiments.urls")),
    path("sweeps/", include("webapp.sweeps.urls")),
    path("review/", include("webapp.review.urls")),
    path("teams/", include("webapp.teams.urls")),
    path("api/v1/", include("webapp.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("account/", include("webapp.accounts.urls")),
    path("media/<path:path>", serve_media, name="media"),
    path("healthz/", healthz, name="healthz"),
]

handler404 = "webapp.api.errors.not_found"
handler500 = "webapp.api.errors.server_error"
