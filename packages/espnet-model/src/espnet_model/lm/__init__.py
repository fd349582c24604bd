"""Language models: ESPnet2's transformer and RNN LMs, their loss, cached batch scoring.

``build_lm(config, vocab_size)`` builds a :class:`LanguageModel` from an ESPnet2-style
block (``lm: transformer``, ``lm_conf``, ``model_conf``); ``load_espnet2_lm(path)`` loads
an ESPnet2 LM experiment or pack. ``model(text=..., text_lengths=...)`` follows the
training contract; ``model.nll`` gives per-sentence NLL and token counts (perplexity);
``model.batch_score(ys, state)`` scores the next token of ``n`` prefixes with a cache
(:class:`LMState`, rows reordered with ``state.select(indices)``).
"""

from espnet_model.lm.base import BaseLM, LMState
from espnet_model.lm.builder import build_lm
from espnet_model.lm.espnet2 import ESPnet2LM, load_espnet2_lm
from espnet_model.lm.model import LanguageModel
from espnet_model.lm.seq_rnn import SequentialRNNLM
from espnet_model.lm.transformer import TransformerLM

__all__ = [
    "BaseLM",
    "ESPnet2LM",
    "LMState",
    "LanguageModel",
    "SequentialRNNLM",
    "TransformerLM",
    "build_lm",
    "load_espnet2_lm",
]
