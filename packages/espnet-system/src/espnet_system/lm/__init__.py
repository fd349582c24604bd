"""The language-model system: ``LMSystem`` and the schemas of an LM recipe's configs.

An LM recipe is a folder named ``lm`` (``egs/<corpus>/lm``): ``espnet-run`` runs it with
:class:`LMSystem` (``just lm <corpus> <stages>``). An ASR recipe trains its LM by
running that recipe from its ``train_lm`` stage (``ASRSystem``, ``conf/lm.yaml``).
"""

from .configs import LMDataConfig, LMPublishConfig, LMStageConfig, PerplexityConfig
from .perplexity import format_perplexity, perplexity
from .system import LMSystem

__all__ = [
    "LMDataConfig",
    "LMPublishConfig",
    "LMStageConfig",
    "LMSystem",
    "PerplexityConfig",
    "format_perplexity",
    "perplexity",
]
