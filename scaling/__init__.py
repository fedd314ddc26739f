"""datamill: scaling."""
