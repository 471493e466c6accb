from django.urls import include, path
from rest_framework.routers import DefaultRouter

from webapp.api.catalogue import catalogue
from webapp.api.datasets import DatasetViewSet
from webapp.api.experiments import ExperimentViewSet
from webapp.api.review import CommentViewSet
from webapp.api.sweeps import SweepViewSet
from webapp.api.tokens import TokenViewSet
from webapp.api.transfer import TransferEvaluationViewSet

router = DefaultRouter()
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("experiments", ExperimentViewSet, basename="experiment")
router.register("sweeps", SweepViewSet, basename="sweep")
router.register("tokens", TokenViewSet, basename="token")
router.register("comments", CommentViewSet, basename="comment")
router.register("transfer-evaluations", TransferEvaluationViewSet, basename="transfer-evaluation")

urlpatterns = [
    path("catalogue/", catalogue, name="catalogue"),
    path("", include(router.urls)),
]
