"""SQLite with its connections kept open between requests (see base.py)."""
