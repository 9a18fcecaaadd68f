from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "casebridge.cases"
    label = "cases"

    def ready(self) -> None:
        from casebridge.cases import audit_targets

        audit_targets.register()
