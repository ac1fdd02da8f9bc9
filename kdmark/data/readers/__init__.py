"""Readers for every benchmark's native format. Use :func:`kdmark.data.read_dataset`, which detects the format."""
