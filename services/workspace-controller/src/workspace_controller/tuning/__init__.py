"""The tuning path: the Job, its status and the trainer's progress."""
