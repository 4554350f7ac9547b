"""The workspace's status as a pure function of what a reconcile observed."""
