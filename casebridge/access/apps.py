from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "casebridge.access"
    label = "access"
    verbose_name = "Authorization policy"
