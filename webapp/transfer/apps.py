from django.apps import AppConfig


class TransferConfig(AppConfig):
    name = "webapp.transfer"
    label = "transfer"
    verbose_name = "Cross-dataset evaluation"
