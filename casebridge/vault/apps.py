from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "casebridge.vault"
    label = "vault"
    verbose_name = "Encrypted vault"

    def ready(self) -> None:
        from casebridge.core.tasks import register_periodic
        from casebridge.vault.uploads import expire_uploads

        register_periodic("vault.upload_expiry", expire_uploads)
