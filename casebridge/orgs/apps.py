from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "casebridge.orgs"
    label = "orgs"
    verbose_name = "Organizations"

    def ready(self) -> None:
        from casebridge.core.tasks import register_periodic
        from casebridge.orgs.actions import record_expired_emergency_grants

        register_periodic("orgs.emergency_expiry", record_expired_emergency_grants)
        from casebridge.orgs.agreements import notify_expired

        register_periodic("orgs.baa_expiry", notify_expired)
