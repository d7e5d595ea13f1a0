"""The fast loaders: NeMo models built without random weights, their tensors mapped from the export.

* nemo_archive.py: a `.nemo` archive read in place (the ASR and diarizer families): its layout,
  the small members unpacked once, the weights mapped.
* nemo_restore.py: a NeMo model restored from it, mapped or plain, and the models nested in it.
* speechlm.py: a speech-LLM's folder of safetensors (NeMo's speechlm2 models).

Each falls back to NeMo's own loading, which gives the same model, when its fast way cannot be used.
"""
