"""hocba: Học bạ số cấp tiểu học."""

__version__ = "0.1.0"
