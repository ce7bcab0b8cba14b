"""From a finished call to its database row: the record of what the proxy saw
(``record.py``), the one step that parses, prices and shapes it (``account.py``), the row
and its columns (``row.py``), the readable line (``line.py``), and prices (``pricing.py``)."""
