"""Reading data: PyAV clip decoding, captions, per-modality transforms, datasets and data modules."""
