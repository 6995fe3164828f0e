"""The HTTP side of ``chatdebug serve``: ``/metrics``, health, the read API, auth and the web
viewer's static files."""
