"""The proxy's own pages: the stats API and dashboard (``pages.py``), the table of stats
endpoints (``endpoints.py``), their parameters (``params.py``) and queries
(``queries.py``), read-only database access off the event loop (``reader.py``), and the
access token (``access.py``)."""
