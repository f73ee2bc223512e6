"""Facts about the machine the workshop runs on: the NVIDIA driver, torch's CUDA build, the C toolchain, whether the
Hugging Face Hub answers, and whether this Python is new enough. Standard library only; imports nothing else of utils."""
