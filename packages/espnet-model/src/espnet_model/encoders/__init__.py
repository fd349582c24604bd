"""Speech encoders: ``forward(xs, lengths) -> (out, out_lengths)`` and ``output_size()``."""

from espnet_model.encoders.conformer import ConformerEncoder
from espnet_model.encoders.contextual_block_conformer import ContextualBlockConformerEncoder
from espnet_model.encoders.e_branchformer import EBranchformerEncoder
from espnet_model.encoders.transformer import TransformerEncoder

__all__ = [
    "ConformerEncoder",
    "ContextualBlockConformerEncoder",
    "EBranchformerEncoder",
    "TransformerEncoder",
]
