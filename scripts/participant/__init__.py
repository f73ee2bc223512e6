"""Run by participants during the workshop (most through make: `make lab`, `make workshop`)."""
