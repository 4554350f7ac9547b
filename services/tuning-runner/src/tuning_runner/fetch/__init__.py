"""`fetch`: bring the tuning input into the data folder."""
