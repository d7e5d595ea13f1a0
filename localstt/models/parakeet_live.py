"""Parakeet-TDT live: NeMo's own buffered streaming pipeline (`BufferedRNNTPipeline`, NeMo 3.0's
unified streaming inference) over the model the store already loaded.

NeMo's pipeline normally restores a model itself (`restore_from` / `from_pretrained`); its wrapper
calls `load_model` once, so a wrapper whose `load_model` returns the loaded model hands it ours:
pinned, verified, mapped, offline, never a second copy. The wrapper sets the model's decoding to
label-looping greedy_batch (what chunked TDT decoding needs), its dither to 0, and keeps its dtype:
float32 weights, under the engine's autocast on a GPU.

A decoding is global to the model, so the live one (per-stream phrase boosting on) is kept aside and
swapped in for each step only; file jobs between steps keep their own. One live decoder is built per
loaded model and live settings (`live_decoder`), and serves every session: building NeMo's pipeline
costs a decoding rebuild and leaves about 100 MB to the cyclic garbage collector each time.

Each step encodes left + chunk + right context of every stream that has a chunk ready, in ONE
encoder call, and decodes the chunk with each stream's saved decoder state. Text becomes final when
NeMo's endpointing sees `endpoint_ms` without a new token, or when the stream ends (the tail is
flushed); until then it is partial. Final words carry times in seconds from the stream's start.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from localstt.models.capabilities import LiveChunk, LiveUpdate
from localstt.models.family import LoadedModel
from localstt.models.parakeet_boost import CONTEXT_SCORE, DEPTH_SCALING, decoding_state, put_decoding
from localstt.spec import LiveSettings
from localstt.transcript import Word

SAMPLE_RATE = 16000


def nemo_settings(settings: LiveSettings, device: str, compute_dtype: str, use_amp: bool) -> Any:
    """The configuration NeMo's buffered RNNT pipeline reads (the keys of NVIDIA's
    examples/asr/conf/asr_streaming_inference/buffered_rnnt.yaml that NeMo 3.0's code reads), with
    our chunk, contexts and endpointing."""
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "asr": {
                "model_name": "<loaded by the store>",
                "device": device,
                "device_id": 0,
                "compute_dtype": compute_dtype,
                "use_amp": use_amp,
                "decoding": {
                    "strategy": "greedy_batch",
                    "preserve_alignments": False,
                    "fused_batch_size": -1,
                    "greedy": {
                        "use_cuda_graph_decoder": device == "cuda",
                        "max_symbols": 10,
                        "loop_labels": True,
                        "preserve_frame_confidence": False,
                        # each stream may boost its own phrases (NeMo's per-stream phrase boosting)
                        "enable_per_stream_biasing": True,
                    },
                },
            },
            "itn": {"left_padding_size": 4, "batch_size": 32, "n_jobs": 1},
            "confidence": {
                "exclude_blank": True,
                "aggregation": "mean",
                "method_cfg": {
                    "name": "entropy",
                    "entropy_type": "tsallis",
                    "alpha": 0.5,
                    "entropy_norm": "exp",
                },
            },
            "endpointing": {"stop_history_eou": settings.endpoint_ms, "residue_tokens_at_end": 2},
            "streaming": {
                "sample_rate": SAMPLE_RATE,
                "batch_size": settings.max_streams,
                "chunk_size": settings.chunk_seconds,
                "left_padding_size": settings.left_seconds,
                "right_padding_size": settings.right_seconds,
                "word_boundary_tolerance": 4,
                "request_type": "frame",
                "stateful": True,
                "padding_mode": "right",
            },
            "enable_itn": False,
            "enable_nmt": False,
            "asr_output_granularity": "word",
            "return_tail_result": False,
        }
    )


class ParakeetLive:
    """Many streams of one loaded Parakeet model, stepped together (`LiveDecoder`)."""

    def __init__(self, loaded: LoadedModel, settings: LiveSettings) -> None:
        from nemo.collections.asr.inference.factory.buffered_pipeline_builder import BufferedPipelineBuilder
        from nemo.collections.asr.inference.model_wrappers.rnnt_inference_wrapper import RNNTInferenceWrapper
        from nemo.collections.asr.inference.pipelines.buffered_rnnt_pipeline import BufferedRNNTPipeline

        model = loaded.model
        before = decoding_state(model)  # the wrapper sets its own; the model's is put back

        class LoadedWrapper(RNNTInferenceWrapper):  # type: ignore[misc]
            """NeMo's wrapper, handed the store's model instead of loading one."""

            def load_model(self, model_name: str, map_location: Any) -> Any:
                return model.eval()

        precision = loaded.precision
        use_amp = loaded.device == "cuda" and precision.autocast is not None
        compute_dtype = precision.autocast if use_amp and precision.autocast else precision.weights
        cfg = nemo_settings(settings, loaded.device, compute_dtype, use_amp)
        wrapper = LoadedWrapper(
            model_name="<loaded by the store>",
            decoding_cfg=BufferedPipelineBuilder.get_rnnt_decoding_cfg(cfg),
            device=loaded.device,
            compute_dtype=compute_dtype,
            use_amp=use_amp,
        )
        self.pipeline = BufferedRNNTPipeline(cfg, wrapper, itn_model=None, nmt_model=None)
        self._decoding = decoding_state(model)
        put_decoding(model, before)
        self._model = model
        self._device = loaded.device
        # NeMo rounds the chunk to whole encoder frames (80 ms): the chunk every frame must be.
        self.chunk_samples = round(float(self.pipeline.chunk_size) * SAMPLE_RATE)
        self.latency_seconds = float(self.pipeline.chunk_size) + settings.right_seconds

    def step(self, chunks: Sequence[LiveChunk]) -> list[LiveUpdate]:
        """One model call for `chunks` (at most one per stream). Called with the model's lock held."""
        import torch
        from nemo.collections.asr.inference.streaming.framing.request import Frame

        if not chunks:
            return []
        # model.transcribe() leaves the encoder, decoder and joint in training mode (dropout on).
        self._model.eval()
        frames = [
            Frame(
                samples=torch.from_numpy(np.ascontiguousarray(chunk.samples, dtype=np.float32)),
                stream_id=chunk.stream_id,
                is_first=chunk.first,
                is_last=chunk.last,
                length=chunk.valid,
                options=self._options(chunk) if chunk.first else None,
            )
            for chunk in chunks
        ]
        with self.decoding(), torch.inference_mode():
            outputs = self.pipeline.transcribe_step(frames)
        return [
            LiveUpdate(
                stream_id=output.stream_id,
                final_text=output.final_transcript.strip(),
                final_words=tuple(
                    Word(
                        str(segment.text).strip(),
                        round(float(segment.start), 3),
                        round(float(segment.end), 3),
                    )
                    for segment in output.final_segments or ()
                    if str(segment.text).strip()
                ),
                partial_text=output.partial_transcript.strip(),
                last=chunk.last,
            )
            for chunk, output in zip(chunks, outputs, strict=True)
        ]

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """Within the block the model decodes as the pipeline needs; as before after it."""
        before = decoding_state(self._model)
        put_decoding(self._model, self._decoding)
        try:
            yield
        finally:
            put_decoding(self._model, before)

    def _options(self, chunk: LiveChunk) -> Any:
        """A stream's options, on its first frame: its own phrases boosted, with the tree's settings
        and the strength of the offline boosting (localstt/models/parakeet_boost.py)."""
        from nemo.collections.asr.inference.streaming.framing.request_options import ASRRequestOptions

        vocabulary = chunk.vocabulary
        if vocabulary is None or not vocabulary.phrases:
            return ASRRequestOptions()
        from nemo.collections.asr.parts.context_biasing.biasing_multi_model import BiasingRequestItemConfig
        from nemo.collections.asr.parts.context_biasing.boosting_graph_batched import BoostingTreeModelConfig

        tree = BoostingTreeModelConfig(
            key_phrases_list=list(vocabulary.phrases),
            context_score=CONTEXT_SCORE,
            depth_scaling=DEPTH_SCALING,
            use_triton=self._device == "cuda",
        )
        biasing = BiasingRequestItemConfig(
            boosting_model_cfg=tree,
            boosting_model_alpha=vocabulary.strength,
            cache_key=vocabulary.phrases_key,
        )
        return ASRRequestOptions(biasing_cfg=biasing)

    def drop(self, stream_id: int) -> None:
        """Forget a stream that ended without its last chunk (a client that went away)."""
        state = self.pipeline.get_state(stream_id)
        computer = self.pipeline.decoding_computer
        # its phrases leave the shared boosting model, as NeMo does at a stream's last frame
        if (
            state is not None
            and computer is not None
            and state.has_biasing_request()
            and state.options.biasing_cfg.auto_manage_multi_model
        ):
            state.options.biasing_cfg.remove_from_multi_model(
                biasing_multi_model=computer.biasing_multi_model
            )
        self.pipeline.delete_state(stream_id)
        bufferer = getattr(self.pipeline, "bufferer", None)
        if bufferer is not None and hasattr(bufferer, "rm_bufferer"):
            bufferer.rm_bufferer(stream_id)
