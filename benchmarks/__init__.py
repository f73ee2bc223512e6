"""GPU and token-budget benchmarks (`make benchmark`); results under benchmarks/results/."""
