"""ControllerRevisions: one per distinct spec of a workspace, numbered, at most ten kept."""
