"""datamill: filters."""
