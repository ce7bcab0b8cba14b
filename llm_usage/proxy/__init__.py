"""The mitmproxy side: the one addon object (``addon.py``), its options (``settings.py``),
routing ``/<provider>/...`` upstream (``routing.py``), ``include_usage`` injection
(``include_usage.py``), capturing each call (``capture.py``) and teeing streams
(``tee.py``, ``decoding.py``)."""
