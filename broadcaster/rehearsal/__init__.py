"""Rehearsing a night without real accounts: replays, fictional nights, the demo, the platform
emulator."""
