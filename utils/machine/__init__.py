"""Facts about the machine the workshop runs on: the NVIDIA driver, torch's CUDA build, the C toolchain, whether the
Hugging Face Hub answers, whether this Python is new enough, and stopping a child process with everything it
started (``processes``). Standard library only; imports nothing else of utils."""
