"""manage.py wa_sidecar_status [ORG ...] [--json]: the fleet's status, one line per organization."""

import json
from typing import Any, Dict, List

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....errors import WaSidecarError
from ...conf import client

COLUMNS = ("ORG", "STATUS", "JID", "QUEUED", "SENT TODAY", "FAILED TODAY", "LAST ERROR")


def rows(orgs: List[Dict[str, Any]]) -> List[List[str]]:
    """The table's rows for status objects."""
    out = []
    for s in orgs:
        outbox = s.get("outbox") or {}
        out.append([
            str(s.get("organization_id", "")),
            str(s.get("status", "")),
            s.get("jid") or "-",
            str(outbox.get("queued", 0)),
            str(outbox.get("sent_today", 0)),
            str(outbox.get("failed_today", 0)),
            s.get("last_error") or "-",
        ])
    return out


def table(orgs: List[Dict[str, Any]]) -> str:
    body = rows(orgs)
    widths = [max(len(r[i]) for r in [list(COLUMNS), *body]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [list(COLUMNS), *body]]
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "Print the status of wa-sidecar's organizations (all, or those named)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("orgs", nargs="*", metavar="ORG", help="organization ids (default: all)")
        parser.add_argument("--json", action="store_true", help="print the status objects as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        wa = client()
        try:
            orgs = [wa.status(o) for o in options["orgs"]] if options["orgs"] else wa.orgs()
        except WaSidecarError as err:
            # An unreachable API's message names the address already.
            raise CommandError(str(err) if err.status is None else f"wa-sidecar at {wa.base}: {err}") from err
        if options["json"]:
            self.stdout.write(json.dumps(orgs, indent=2))
        elif not orgs:
            self.stdout.write("no organizations: start one with the API's POST /v1/orgs/{id}/start")
        else:
            self.stdout.write(table(orgs), ending="")
