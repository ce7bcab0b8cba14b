"""The SQLite database: its schema, built by ordered migrations (``schema.py``), and the
writer thread that builds and inserts rows in batches (``writer.py``)."""
