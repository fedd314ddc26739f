"""datamill: pipelines/commands."""
