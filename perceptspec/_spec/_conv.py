"""Placeholder: this block family is being written."""

__all__: list[str] = []
