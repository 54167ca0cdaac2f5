"""``offnadir template-config``: print the commented config template (generated from the schema)."""

from __future__ import annotations

NAME = "template-config"


def add_parser(sub):
    return sub.add_parser(NAME, help="print a commented config template to stdout")


def run(args) -> int:
    from offnadir.config import template

    print(template())
    return 0
