"""The HTTP side of ``chatdebug serve``: ``/metrics``, health, the read API, the change
event streams, auth and the web viewer's static files.

Needs the ``serve`` extra (Starlette): ``chatdebug serve`` imports it only when it starts.
"""

from ._event_hub import EventHub
from ._guard import secure_h11_protocol
from .app import Readiness, ServerState, create_app

__all__ = ["EventHub", "Readiness", "ServerState", "create_app", "secure_h11_protocol"]
