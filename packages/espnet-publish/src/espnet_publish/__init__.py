"""espnet-publish: self-describing model folders, model cards, Hugging Face Hub upload, demos.

Usage::

    python - <<'PY'
    from espnet_publish import pack_model, upload_model
    packed = pack_model("exp/model", "exp/packed", model_name="my-asr")
    print(upload_model(packed, "my-user/my-asr"))   # needs HF_TOKEN or `hf auth login`
    PY
"""

from .demo import pack_demo, upload_demo
from .errors import PublishError
from .hub import resolve_token, upload_model
from .manifest import verify_manifest
from .pack import pack_model

__version__ = "0.1.0"

__all__ = [
    "PublishError",
    "pack_demo",
    "pack_model",
    "resolve_token",
    "upload_demo",
    "upload_model",
    "verify_manifest",
]
