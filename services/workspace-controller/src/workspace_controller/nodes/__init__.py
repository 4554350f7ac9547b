"""Which nodes a workspace runs on, and the NodeClaims that ask for missing ones."""
