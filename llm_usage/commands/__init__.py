"""The commands beside the proxy, reading the same database (``--db``, else
``PROXY_DB_PATH`` from the environment or ``.env``, else ``./usage.db``).

Each command's module is imported only when it runs: the status line must answer Claude
Code in well under 100 ms, and the other commands import half of the proxy.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS = {
    # name -> (module, what it does)
    "report": ("report", "spend per day, week, month, session, model or project, as a table (or --json)"),
    "ca": ("ca", "where mitmproxy's CA is, and the environment lines for the HTTPS_PROXY listener"),
    "key-id": ("key_id", "print the fingerprint (key_id) of an API key you paste"),
    "export": ("export", "the calls as CSV or JSON lines (filters as in the stats API)"),
    "statusline": ("statusline", "one line for Claude Code's status bar: today's spend, this session's, the model"),
}


def database_path(given: str | None) -> str:
    """The database the proxy would use: the argument, the environment, ``.env``, the default."""
    if given:
        return given
    if os.environ.get("PROXY_DB_PATH"):
        return os.environ["PROXY_DB_PATH"]
    from ..config.files import read_dotenv

    return read_dotenv().get("PROXY_DB_PATH") or "./usage.db"


def _command_in(argv: list[str]) -> str | None:
    """The command named on the command line (after ``--db``), before parsing it: only its
    module is imported."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--db":
            index += 2
        elif word.startswith("-"):
            index += 1
        else:
            return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_usage", description="llm-usage commands")
    parser.add_argument("--db", help="the SQLite file (default: PROXY_DB_PATH, else ./usage.db)")
    commands = parser.add_subparsers(dest="command", required=True)
    chosen = _command_in(sys.argv[1:] if argv is None else list(argv))
    for name, (module_name, about) in COMMANDS.items():
        command = commands.add_parser(name, help=about)
        command.add_argument("--db", default=argparse.SUPPRESS, help="the SQLite file (here or before the command)")
        if name == chosen:
            module = importlib.import_module(f"{__name__}.{module_name}")
            module.arguments(command)
            command.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args, database_path(args.db)))
    except BrokenPipeError:  # `... | head`: the reader had enough, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit
        return 0
