from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "casebridge.orgs"
    label = "orgs"
    verbose_name = "Organizations"
