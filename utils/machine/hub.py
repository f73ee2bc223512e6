"""Is the Hugging Face Hub reachable? Asked once, quickly, so offline machines fall back at once."""

from __future__ import annotations

import os


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` is set: the libraries will not try the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """Ask the Hub once with a short timeout, instead of waiting through the libraries' retries
    (datasets retries five times with back-off: about 25 s on a machine without network)."""
    import urllib.error
    import urllib.request

    if hub_offline():
        return False, "HF_HUB_OFFLINE=1 が設定されています"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # the server answered (an error status still means it is reachable)
    except OSError as err:  # DNS failure, refused connection, timeout...
        return False, f"{endpoint} に接続できません ({type(err).__name__})"
    return True, endpoint
