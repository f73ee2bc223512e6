"""Measuring what training changed: Japanese ROUGE with bootstrap intervals (``metrics``), the test predictions and
results.json (``results``), reference losses, k-shot prompting baselines (``kshot``), faithfulness to the passage,
forgetting along the adapter scale, and the shipped reference results. Imports ``utils.recipe`` and below."""
