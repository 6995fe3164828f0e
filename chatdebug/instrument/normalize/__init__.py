"""Provider normalizers."""
