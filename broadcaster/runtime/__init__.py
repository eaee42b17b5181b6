"""The daemon and what runs it: the poll cycle, health, status, start-up checks."""
