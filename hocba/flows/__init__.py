"""Prefect flows: each stage of the record's lifecycle in chunks of work (docs/ARCHITECTURE.md)."""
