"""Training data: files to rows, rows to token ids with loss masks, examples to packed batches."""
