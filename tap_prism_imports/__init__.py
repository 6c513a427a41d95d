"""Singer tap for Prism bulk-import jobs and the outcome of every row in them."""

__version__ = "0.1.0"
