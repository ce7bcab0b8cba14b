"""The addon list ``addon.py`` hands to mitmproxy, in hook order."""

from __future__ import annotations

from .recorder import UsageRecorder
from .router import Router
from .settings import Settings


def make_addons() -> list[object]:
    settings = Settings()
    addons: list[object] = [settings]
    try:
        from .web import WebUI
    except ImportError:  # pragma: no cover - the web UI ships in the same package
        WebUI = None  # type: ignore[assignment,misc]
    if WebUI is not None:
        addons.append(WebUI())
    addons += [Router(settings), UsageRecorder(settings)]
    return addons
