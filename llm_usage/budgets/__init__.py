"""Budgets: spend per period kept current (``tracker.py``), calendar periods in a time zone
(``periods.py``), alerts that reach a person (``alerts.py``)."""
