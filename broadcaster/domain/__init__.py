"""Plain data of an election night: results, events, tallies, text limits. No I/O."""
