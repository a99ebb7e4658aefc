"""The read-only web dashboard each node serves beside ``/metrics``.

``static/`` holds the page (plain HTML, CSS and JavaScript, no build step);
``data.py`` reads what it shows; ``server.py`` is the HTTP server for both the
dashboard and the Prometheus metrics.
"""

from .data import Dashboard

__all__ = ["Dashboard"]
