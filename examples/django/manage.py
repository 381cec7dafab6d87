#!/usr/bin/env python3
"""Django's command-line utility for this example (runserver, check,
wa_sidecar_status). The settings put the repository's clients/python on
the path: the example needs no pip install."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waexample.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
