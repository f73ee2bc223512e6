"""Shared plumbing for the LoRA SFT workshop notebooks (config, data, prompt, models, metrics)."""

import logging

# bitsandbytes announces, on CPUs with AVX512-BF16, that an optional CPU 4-bit kernel package ("kernels")
# is missing. The workshop never runs 4-bit on CPU, so the warning only confuses participants.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from .config import ConfigError, WorkshopConfig, get_config
from .prompt import PROMPT_TEMPLATE, format_prompt, to_prompt_completion

__all__ = ["ConfigError", "WorkshopConfig", "get_config", "PROMPT_TEMPLATE", "format_prompt", "to_prompt_completion"]
