"""From the outbox to the platforms, exactly once."""
