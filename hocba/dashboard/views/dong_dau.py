"""Đóng dấu, phát hành: the clerk's sealing queue (seal = issue = lock)."""

from hocba.dashboard.signing import queue_page

queue_page("KY_PHAT_HANH")
