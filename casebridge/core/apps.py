from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "casebridge.core"
    label = "core"
