"""The tuning feature: from a workspace to a fine-tuning Job, and how far it has got.

`plan` resolves the workspace, its preset, SKU and `config` (the results directory) into a
`TuningPlan`; `job` builds the Job from it (pure, with the shared builders of `manifests/`);
`reconcile` applies it, `status` reads where the Job stands and `progress` the trainer's numbers.
"""
