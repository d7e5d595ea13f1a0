"""The fast loaders: NeMo models built without random weights, their tensors mapped from the export.

* nemo_archive.py: a `.nemo` archive read in place (Parakeet).
* salm.py: a SALM folder of safetensors (Canary-Qwen).

Each falls back to NeMo's own loading, which gives the same model, when its fast way cannot be used.
"""
