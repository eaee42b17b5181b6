"""What a post says and shows: template context, sandboxed rendering, limits, cards."""
