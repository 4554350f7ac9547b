"""Pure manifest builders: plain dicts in, plain dicts out; only reconcilers call the API."""
