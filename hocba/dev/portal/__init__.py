"""The bundled province portal service (Cổng tiếp nhận học bạ số), for development and tests.

See :mod:`hocba.dev.portal.app` and docs/PORTAL.md.
"""

from hocba.dev.portal.app import (
    PortalFactory,
    PortalFaults,
    PortalUser,
    ProvincePortal,
    ResponseCode,
    ServedPortal,
    create_portal_app,
    default_workers,
    load_certificates,
    serve,
    serve_in_processes,
)

__all__ = [
    "PortalFactory",
    "PortalFaults",
    "PortalUser",
    "ProvincePortal",
    "ResponseCode",
    "ServedPortal",
    "create_portal_app",
    "default_workers",
    "load_certificates",
    "serve",
    "serve_in_processes",
]
