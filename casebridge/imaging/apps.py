from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "casebridge.imaging"
    label = "imaging"
