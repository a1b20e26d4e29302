"""Real servers for tests (see ``hocba.asgi``)."""

from hocba.asgi import serve_in_thread as serve_asgi

__all__ = ["serve_asgi"]
