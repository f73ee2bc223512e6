"""Checks run by CI (and by `make test` / `make browser-test`)."""
