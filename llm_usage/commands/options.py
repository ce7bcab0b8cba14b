"""The stats API's filters as command-line options (``--days``, ``--provider``, ...), for the
commands that read calls (``export``, ``report``): the same names, checked by the same
``web/params.py``."""

from __future__ import annotations

import argparse
from typing import Any

from ..web.params import FILTER_PARAMS


def add_filters(command: Any, but: frozenset[str] = frozenset()) -> None:
    for name in sorted(FILTER_PARAMS - but):
        command.add_argument(f"--{name}", help=f"as the stats API's {name}")


def filter_values(args: argparse.Namespace) -> dict[str, str]:
    """The filters given, as the stats API's parameter values."""
    return {name: str(getattr(args, name)) for name in FILTER_PARAMS if getattr(args, name, None) is not None}
