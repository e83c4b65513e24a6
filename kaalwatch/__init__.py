"""kaalwatch: the production tool of a made-to-order Etsy art shop."""

__version__ = "0.1.0"
