"""The bundled province portal service (Cổng tiếp nhận học bạ số), for development and tests.

See :mod:`hocba.dev.portal.app` and docs/PORTAL.md.
"""

from hocba.dev.portal.app import (
    PortalFaults,
    PortalUser,
    ProvincePortal,
    ResponseCode,
    create_portal_app,
    load_certificates,
    serve,
)

__all__ = [
    "PortalFaults",
    "PortalUser",
    "ProvincePortal",
    "ResponseCode",
    "create_portal_app",
    "load_certificates",
    "serve",
]
