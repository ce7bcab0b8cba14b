"""mitmproxy entry script: ``mitmdump -s addon.py --mode reverse:http://localhost:8080``.

Kept tiny on purpose: mitmproxy reloads only this file on change, so all logic lives in
the ``llm_usage`` package (where the tests import it).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llm_usage.addons import make_addons

addons = make_addons()
