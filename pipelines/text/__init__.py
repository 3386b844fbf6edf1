"""Pure-Python text rules behind the native stages (no Spark here, so they are unit-testable)."""
