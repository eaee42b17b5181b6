"""What every stage shares: configuration, clock, logging and secrets."""
