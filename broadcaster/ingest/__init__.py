"""From a results feed to a checked Snapshot and its Events: sources, parsers, gates, the differ."""
