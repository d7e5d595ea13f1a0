"""A machine with a CUDA GPU, simulated where there is none: PyTorch says that a GPU is there, names
it and gives its compute capability (and its driver its version), and no kernel ever runs on it:
anything that really tries to use it fails as it does on a machine without one.

    with simulated_gpu(CARDS["t4"]):                 # in a test
        ...
    LOCALSTT_SIMULATED_GPU=h100 pytest -p testkit.simulated_gpu tests/test_engine.py   # a whole run

As a pytest plugin it does nothing unless `ENV` names a card; then the whole run sees that card, and
the run's header says so. Only this process is simulated, not the processes its tests start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

ENV = "LOCALSTT_SIMULATED_GPU"
NATIVE_BF16 = (8, 0)
DRIVER_CUDA = 12080  # the simulated driver supports CUDA 12.8, as cuDriverGetVersion() writes it


@dataclass(frozen=True)
class Card:
    name: str
    capability: tuple[int, int]

    @property
    def native_bf16(self) -> bool:
        return self.capability >= NATIVE_BF16


CARDS = {
    "h100": Card("NVIDIA H100 80GB HBM3", (9, 0)),
    "t4": Card("Tesla T4", (7, 5)),
}

_active: list[Card] = []  # the card simulated now, if any


def active() -> Card | None:
    """The card simulated in this process now, or None."""
    return _active[-1] if _active else None


@contextmanager
def simulated_gpu(card: Card) -> Iterator[Card]:
    """torch.cuda answers as on a machine with one `card`, for the block."""
    import torch  # only where a GPU is simulated

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return card.native_bf16 or including_emulation  # PyTorch counts emulated bfloat16 too

    answers: dict[str, Any] = {
        "is_available": lambda: True,
        "device_count": lambda: 1,
        # What NeMo asks whenever a GPU is there, even of a model on the CPU:
        "current_device": lambda: 0,  # ModelPT, when it is made
        "is_current_stream_capturing": lambda: False,  # the features' normalisation (CUDA graphs)
        "get_device_name": lambda device=None: card.name,
        "get_device_capability": lambda device=None: card.capability,
        "is_bf16_supported": is_bf16_supported,
    }
    patched = [(torch.cuda, name, answer) for name, answer in answers.items()]
    try:  # the driver's version, which NeMo's decoders ask for when a GPU is there (CUDA graphs)
        from cuda.bindings import driver
    except ImportError:
        pass
    else:
        patched.append((driver, "cuDriverGetVersion", lambda: (driver.CUresult.CUDA_SUCCESS, DRIVER_CUDA)))
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    for owner, name, answer in patched:
        setattr(owner, name, answer)
    _active.append(card)
    try:
        yield card
    finally:
        _active.pop()
        for owner, name, original in saved:
            setattr(owner, name, original)


_session: list[Any] = []  # the plugin's simulation, entered for the whole run


def pytest_configure(config: Any) -> None:
    name = os.environ.get(ENV, "")
    if not name:
        return
    if name not in CARDS:
        raise ValueError(f"{ENV}={name!r}: name one of {', '.join(CARDS)}")
    context = simulated_gpu(CARDS[name])
    context.__enter__()
    _session.append(context)


def pytest_unconfigure(config: Any) -> None:
    while _session:
        _session.pop().__exit__(None, None, None)


def pytest_report_header(config: Any) -> str | None:
    card = active()
    if card is None:
        return None
    major, minor = card.capability
    return f"simulated GPU: {card.name}, compute capability {major}.{minor} (no kernel runs)"
