"""The fine-tuning recipe the notebooks teach, as reusable pieces: the profile (``config``), the prompt template,
the data and its split, loading the model, LoRA + SFT settings and training, generation, the memory estimates used
to pick a GPU, and merging the adapter for export. Imports ``utils.machine`` only."""
