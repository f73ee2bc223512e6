"""The pinned stack as installed: the dependency closure of requirement lines, read from the installed metadata.

Used by ``scripts.instructor.wheelhouse`` (which distributions an offline machine needs) and
``scripts.maintainer.platform_freeze`` (which of a hosted platform's packages the workshop touches). Run from the
workshop's ``.venv``, which ``make setup`` installed from requirements.txt: the versions found are the pins.
"""

from __future__ import annotations

import importlib.metadata as metadata

from packaging.requirements import Requirement

from scripts.participant.hosted_setup import canonical, is_torch_family, requirement_name


def marker_environment(python_version: str | None = None) -> dict[str, str]:
    """Marker values for evaluating requirements: this Python's, or those of ``python_version`` ('3.12')."""
    env = {"extra": ""}
    if python_version:
        env |= {"python_version": python_version, "python_full_version": python_version + ".0"}
    return env


def closure(roots, python_version: str | None = None, follow_torch: bool = True) -> dict[str, str]:
    """{canonical name: installed version} of the roots and everything they require, markers evaluated for
    ``python_version``; a requirement with extras (``bleach[css]``) brings the dependencies of those extras too. With
    ``follow_torch=False`` the torch family (torch, triton, nvidia-*, cuda-*) is neither listed nor followed: the
    target machine keeps its own CUDA build. Raises LookupError naming a root or dependency that this environment
    lacks."""
    base = marker_environment(python_version)
    found: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    stack = [(canonical(name), "") for name in roots]
    while stack:
        name, extra = stack.pop()
        if (name, extra) in seen or (not follow_torch and (is_torch_family(name) or name.startswith("cuda-"))):
            continue
        seen.add((name, extra))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise LookupError(name) from None
        found[name] = dist.version
        env = base | {"extra": extra}
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None and extra:
                continue  # already followed for the distribution itself
            if requirement.marker is None or requirement.marker.evaluate(env):
                dependency = canonical(requirement.name)
                stack.append((dependency, ""))
                stack += [(dependency, canonical(e)) for e in requirement.extras]
    return dict(sorted(found.items()))


def requirement_names(lines: list[str]) -> list[str]:
    """Canonical names of the requirement lines (blank lines, comments and pip options left out)."""
    return [canonical(name) for name in map(requirement_name, lines) if name]
