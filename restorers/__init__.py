"""The restorer family and its registry.

Adding a restorer: one new module in this package, one line in ``REGISTRY``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterator

import numpy as np

from restorers.bandwidth_extension_dsp import BandwidthExtensionDsp
from restorers.base import Availability, Restorer, RestorerParams
from restorers.demucs_remix import DemucsRemix
from restorers.mcra_wiener import McraWiener
from restorers.passthrough import Passthrough
from restorers.spectral_gate import SpectralGate
from restorers.spectral_gate_hf import SpectralGateHF
from restorers.spectral_subtraction_hf import SpectralSubtractionHF
from restorers.spectral_unet import UNetBandwidthExtension, UNetCodec, UNetDenoise, UNetRestore

REGISTRY: dict[str, type[Restorer]] = {
    "passthrough": Passthrough,
    "spectral_gate_hf": SpectralGateHF,
    "spectral_subtraction_hf": SpectralSubtractionHF,
    "mcra_wiener": McraWiener,
    "spectral_gate": SpectralGate,
    "bandwidth_extension_dsp": BandwidthExtensionDsp,
    "demucs_remix": DemucsRemix,
    "unet_denoise": UNetDenoise,
    "unet_codec": UNetCodec,
    "unet_bwe": UNetBandwidthExtension,
    "unet_restore": UNetRestore,
}


def restorer_class(name: str) -> type[Restorer]:
    """The class registered under ``name``; an unknown name lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise KeyError(f"unknown restorer {name!r}; known restorers: {known}") from None


def output_names(names: list[str] | None = None) -> list[str]:
    """The named (default: all) restorers that produce an output to compare.

    ``passthrough`` is left out: in comparisons the unprocessed input is already the first row.
    """
    return [name for name in (names or list(REGISTRY)) if name != "passthrough"]


def get_restorer(name: str, **params: Any) -> Restorer:
    """Build the restorer ``name`` with parameter overrides, e.g. ``alpha=1.5``."""
    return restorer_class(name)(**params)


def build_available(names: list[str], params: dict[str, dict[str, Any]] | None = None
                    ) -> tuple[dict[str, Restorer], dict[str, str]]:
    """Build each named restorer that can run here; say why for the others.

    Returns:
        ``(restorers, skipped)``: name -> instance, and name -> the reason it
        is unavailable (with how to fix it).
    """
    params = params or {}
    restorers: dict[str, Restorer] = {}
    skipped: dict[str, str] = {}
    for name in names:
        cls = restorer_class(name)
        chosen = cls.Params(**params.get(name, {}))
        availability = cls.availability_for(chosen)
        if availability.available:
            restorers[name] = cls(chosen)
        else:
            skipped[name] = availability.reason
    return restorers, skipped


def made_of_others(restorers: dict[str, Restorer]) -> dict[str, list[str]]:
    """Of ``restorers`` (name -> instance, run on one input), those whose
    :meth:`~restorers.base.Restorer.parts` are all among the others (each the same as one made of
    none): name -> the names whose outputs make its own, through
    :meth:`~restorers.base.Restorer.from_parts`."""
    made_of = {}
    for name, restorer in restorers.items():
        names = [next((other for other, candidate in restorers.items()
                       if not candidate.parts() and part.same_as(candidate)), None) for part in restorer.parts()]
        if names and None not in names:
            made_of[name] = names
    return made_of


def restore_each(restorers: dict[str, Restorer], audio: np.ndarray, sample_rate: int, hold_parts: bool = True,
                 before: Callable[[str], None] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, output)`` of each of ``restorers`` on ``audio``, one at a time in their order,
    ``before(name)`` called before each is made. With ``hold_parts``, one made of others that come
    before it (:func:`made_of_others`) is built from their outputs, which are held until then and
    no longer; without, each runs itself and no output outlives its turn here."""
    made_of = made_of_others(restorers) if hold_parts else {}
    uses = Counter(part for parts in made_of.values() for part in parts)
    held: dict[str, np.ndarray] = {}
    for name, restorer in restorers.items():
        if before is not None:
            before(name)
        parts = made_of.get(name, [])
        if parts and all(part in held for part in parts):
            out = restorer.from_parts(audio, sample_rate, [held[part] for part in parts])
        else:
            out = restorer(audio, sample_rate)
        for part in parts:  # let go of the parts' outputs that nothing still to come is made of
            uses[part] -= 1
            if not uses[part]:
                held.pop(part, None)
        if uses[name]:
            held[name] = out
        yield name, out
        del out  # not kept while the next one runs


def restore_all(restorers: dict[str, Restorer], audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Each of ``restorers``' output on ``audio`` (:func:`restore_each`, the parts held)."""
    return dict(restore_each(restorers, audio, sample_rate))


def restorer_info(name: str) -> dict[str, Any]:
    """One row of the ``restorelab restorers`` listing."""
    cls = restorer_class(name)
    availability = cls.availability()
    return {
        "name": name,
        "kind": cls.kind,
        "goal": cls.goal,
        "available": availability.available,
        "reason": availability.reason,
        "description": cls.description,
    }


__all__ = [
    "REGISTRY", "Availability", "Restorer", "RestorerParams",
    "build_available", "get_restorer", "output_names", "restorer_class", "restorer_info",
]
