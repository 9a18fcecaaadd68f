from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "casebridge.retention"
    label = "retention"
    verbose_name = "Backups and retention"

    def ready(self) -> None:
        from casebridge.core.tasks import register_periodic
        from casebridge.retention.policies import run_if_due
        from casebridge.retention.schedule import run_due

        register_periodic("retention.backups", run_due)
        register_periodic("retention.enforce", run_if_due)
