"""Speech models: fbank frontend, SpecAugment, normalisation, encoders, CTC + attention ASR."""

from espnet_model.asr import ASRModel, count_parameters
from espnet_model.builder import UntrustedCodeError, build_asr_model
from espnet_model.ctc import CTC
from espnet_model.decoder import IncrementalDecoder, TransformerDecoder
from espnet_model.encoders import ConformerEncoder, EBranchformerEncoder, TransformerEncoder
from espnet_model.espnet2 import load_espnet2
from espnet_model.frontend import Fbank, StftFrontend
from espnet_model.mask import make_pad_mask
from espnet_model.normalize import GlobalMVN, UtteranceMVN
from espnet_model.specaug import SpecAug

__version__ = "0.1.0"

__all__ = [
    "ASRModel",
    "CTC",
    "ConformerEncoder",
    "EBranchformerEncoder",
    "Fbank",
    "GlobalMVN",
    "IncrementalDecoder",
    "SpecAug",
    "StftFrontend",
    "TransformerDecoder",
    "TransformerEncoder",
    "UntrustedCodeError",
    "UtteranceMVN",
    "build_asr_model",
    "count_parameters",
    "load_espnet2",
    "make_pad_mask",
]
