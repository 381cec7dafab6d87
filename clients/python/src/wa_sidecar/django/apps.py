"""The app's configuration: connects the owner email to the webhook signals."""

from django.apps import AppConfig


class WaSidecarConfig(AppConfig):
    name = "wa_sidecar.django"
    # "django" would be the default label, after the module's last part.
    label = "wa_sidecar"
    verbose_name = "wa-sidecar"

    def ready(self) -> None:
        from . import mail, signals

        signals.session_cleared.connect(mail.on_session_cleared, dispatch_uid="wa_sidecar_owner_mail_cleared")
        signals.status_changed.connect(mail.on_status_changed, dispatch_uid="wa_sidecar_owner_mail_logged_out")
