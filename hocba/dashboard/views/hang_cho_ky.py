"""Hàng chờ ký: the principal's (or delegated vice principal's) signing queue."""

from hocba.dashboard.signing import queue_page

queue_page("CBQL")
