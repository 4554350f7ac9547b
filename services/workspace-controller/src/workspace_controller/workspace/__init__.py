"""The Workspace reconciler: the level-triggered flow of docs/workspace-controller.md."""
