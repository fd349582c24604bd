"""Feature normalisation: global (corpus statistics) and per-utterance MVN.

The global statistics file is ESPnet2's ``feats_stats.npz``: keys ``count``
(number of frames), ``sum`` ``(F,)`` and ``sum_square`` ``(F,)``. It is read
with a small ``.npy`` reader (no numpy dependency). Mean and std live in
registered buffers, so ``load_state_dict`` restores them without the file.
"""

from __future__ import annotations

import ast
import os
import zipfile
from pathlib import Path

import torch
from torch import nn

from espnet_model.mask import pad_mask_or_none, zero_padded

Pathlike = str | os.PathLike[str]

_NPY_DTYPES: dict[str, torch.dtype] = {
    "f8": torch.float64,
    "f4": torch.float32,
    "i8": torch.int64,
    "i4": torch.int32,
    "u8": torch.uint64,
    "u4": torch.uint32,
}
_STATS_KEYS = ("count", "sum", "sum_square")


def _parse_npy(blob: bytes, where: str) -> torch.Tensor:
    if blob[:6] != b"\x93NUMPY":
        raise ValueError(f"{where} is not a .npy array")
    major = blob[6]
    if major == 1:
        header_len, start = int.from_bytes(blob[8:10], "little"), 10
    else:
        header_len, start = int.from_bytes(blob[8:12], "little"), 12
    header = ast.literal_eval(blob[start : start + header_len].decode("latin1"))
    descr: str = header["descr"]
    if header.get("fortran_order", False) or descr[0] not in "<|" or descr[1:] not in _NPY_DTYPES:
        raise ValueError(
            f"{where}: unsupported array layout descr={descr!r}; save little-endian "
            "float64/float32/int64 arrays in C order (numpy.savez default)"
        )
    data = bytearray(blob[start + header_len :])
    flat = torch.frombuffer(data, dtype=_NPY_DTYPES[descr[1:]]) if data else torch.empty(0)
    return flat.reshape(tuple(header["shape"])).clone()


def load_feats_stats(stats_file: Pathlike) -> dict[str, torch.Tensor]:
    """Read ``count``, ``sum`` and ``sum_square`` from an ESPnet2 ``feats_stats.npz``."""
    path = Path(stats_file)
    if not path.is_file():
        raise FileNotFoundError(
            f"normalize_conf.stats_file={str(path)!r} does not exist; run the collect_stats "
            "stage first or set normalize: utterance_mvn"
        )
    out: dict[str, torch.Tensor] = {}
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        for key in _STATS_KEYS:
            if f"{key}.npy" not in names:
                raise ValueError(
                    f"{path}: missing key {key!r} (found {sorted(n[:-4] for n in names)}); "
                    "expected the ESPnet2 layout count / sum / sum_square"
                )
            out[key] = _parse_npy(archive.read(f"{key}.npy"), f"{path}:{key}")
    return out


class GlobalMVN(nn.Module):
    """``(x - mean) / std`` with corpus statistics; padded frames are set to 0.

    Args:
        stats_file: ``feats_stats.npz`` path; ``None`` starts from mean 0 / std 1
            (e.g. when the buffers come from a checkpoint).
        num_features: feature dimension, checked against the stats file.
        norm_means: subtract the mean.
        norm_vars: divide by the standard deviation.
        eps: variance floor.
    """

    def __init__(
        self,
        stats_file: Pathlike | None = None,
        num_features: int = 80,
        norm_means: bool = True,
        norm_vars: bool = True,
        eps: float = 1.0e-20,
    ) -> None:
        super().__init__()
        self.norm_means = norm_means
        self.norm_vars = norm_vars
        self.stats_file = None if stats_file is None else str(stats_file)
        mean = torch.zeros(num_features)
        std = torch.ones(num_features)
        if stats_file is not None:
            stats = load_feats_stats(stats_file)
            count = stats["count"].double().reshape(())
            total, total_sq = stats["sum"].double(), stats["sum_square"].double()
            if total.shape != (num_features,):
                raise ValueError(
                    f"{stats_file}: sum has shape {tuple(total.shape)} but num_features="
                    f"{num_features}; set normalize_conf.num_features to the frontend's n_mels"
                )
            mean64 = total / count
            var = total_sq / count - mean64 * mean64
            mean, std = mean64.float(), var.clamp(min=eps).sqrt().float()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(
        self, feats: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.norm_means:
            feats = feats - self.mean
        if self.norm_vars:
            feats = feats / self.std
        return zero_padded(feats, pad_mask_or_none(lengths, feats.size(1))), lengths

    def extra_repr(self) -> str:
        return f"stats_file={self.stats_file!r}, norm_means={self.norm_means}, norm_vars={self.norm_vars}"


class UtteranceMVN(nn.Module):
    """Normalise each utterance by the mean (and optionally std) of its valid frames."""

    def __init__(
        self, norm_means: bool = True, norm_vars: bool = False, eps: float = 1.0e-20
    ) -> None:
        super().__init__()
        self.norm_means = norm_means
        self.norm_vars = norm_vars
        self.eps = eps

    def forward(
        self, feats: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pad = pad_mask_or_none(lengths, feats.size(1))
        feats = zero_padded(feats, pad)
        count = lengths.to(feats.dtype).clamp(min=1).view(-1, 1, 1)
        mean = feats.sum(dim=1, keepdim=True) / count
        if self.norm_vars:
            var = (feats.square().sum(dim=1, keepdim=True) / count - mean.square()).clamp(
                min=self.eps
            )
            feats = (feats - mean) / var.sqrt() if self.norm_means else feats / var.sqrt()
        elif self.norm_means:
            feats = feats - mean
        return zero_padded(feats, pad), lengths
