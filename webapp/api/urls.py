from django.urls import include, path
from rest_framework.routers import DefaultRouter

from webapp.api.catalogue import catalogue
from webapp.api.datasets import DatasetViewSet
from webapp.api.experiments import ExperimentViewSet

router = DefaultRouter()
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("experiments", ExperimentViewSet, basename="experiment")

urlpatterns = [
    path("catalogue/", catalogue, name="catalogue"),
    path("", include(router.urls)),
]
