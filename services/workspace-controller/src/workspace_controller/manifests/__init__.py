"""Pure manifest builders both features use: plain dicts in, plain dicts out.

Images and model weights, runner containers and what they may reach, node placement, the
parameter ConfigMaps, NodeClaims and ControllerRevisions. Nothing here imports `inference/` or
`tuning/`; only reconcilers call the API.
"""
