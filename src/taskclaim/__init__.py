"""taskclaim: a PostgreSQL task queue that a fleet of workers claims from over HTTP."""

__version__ = "0.1.0"
