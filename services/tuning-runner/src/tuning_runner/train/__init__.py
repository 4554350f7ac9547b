"""`train`: LoRA / QLoRA fine-tuning with transformers + peft."""
