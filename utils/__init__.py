"""Shared plumbing for the LoRA SFT workshop notebooks (config, data, prompt, models, metrics)."""

from .config import ConfigError, WorkshopConfig, get_config
from .prompt import PROMPT_TEMPLATE, format_prompt, to_prompt_completion

__all__ = ["ConfigError", "WorkshopConfig", "get_config", "PROMPT_TEMPLATE", "format_prompt", "to_prompt_completion"]
