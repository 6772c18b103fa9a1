"""The web layer: the app factory, the handlers of openapi.yaml's operations, the streamed
body, errors as problem+json, parameter validation, and the middleware."""

from .app import create_app

__all__ = ["create_app"]
