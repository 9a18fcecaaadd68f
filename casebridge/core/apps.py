from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "casebridge.core"
    label = "core"

    def ready(self) -> None:
        from django_tasks.signals import task_enqueued

        from casebridge.core import wakeup

        # A task queued on this machine wakes the worker once it is committed (core/wakeup.py).
        task_enqueued.connect(wakeup.on_enqueue, dispatch_uid="casebridge.core.wakeup")
