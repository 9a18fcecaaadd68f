from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "casebridge.vault"
    label = "vault"
    verbose_name = "Encrypted vault"
