from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "casebridge.accounts"
    label = "accounts"

    def ready(self) -> None:
        from casebridge.accounts import signals  # noqa: F401  (connects audit receivers)
