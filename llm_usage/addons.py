"""The addon list ``addon.py`` hands to mitmproxy, in hook order."""

from __future__ import annotations

from .recorder import UsageRecorder
from .router import Router
from .settings import Settings
from .web import WebUI


def make_addons() -> list[object]:
    """Settings first (options), then the proxy's own pages (they answer reserved paths
    before the router sees them), the router, and the recorder."""
    settings = Settings()
    return [settings, WebUI(), Router(settings), UsageRecorder(settings)]
