"""Run by maintainers to rebuild what the repository ships (the tiny model, the hosted notebook, reference results, figures)."""
