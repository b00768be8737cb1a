"""Stage services, one module per stage: mine (more stages join as they are built)."""
