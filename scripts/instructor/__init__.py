"""Run by an instructor before the workshop: the GPU rehearsal on the venue machine, the offline wheelhouse, screenshots."""
