"""The validating admission webhook for Workspaces, served by the controller on :9443."""
