"""Backends/tasks/stream modes genai-bench 0.0.5 supports (shared by the
wire harness and capture_all.py; importing this has no side effects)."""

# ---------------------------------------------------------------------------
# What genai-bench 0.0.5 supports.  Keys: backend -> task -> allowed stream
# modes (first = default).  "stream"/"nostream" only appear twice where the
# user class really has two code paths.
# ---------------------------------------------------------------------------
OPENAI_TASKS = {
    "text-to-text": ["stream"],
    "image-text-to-text": ["stream"],
    "text-to-embeddings": ["nostream"],
    "text-to-image": ["nostream"],
    "text-to-speech": ["stream"],
}
VLLM_TASKS = dict(OPENAI_TASKS, **{"text-to-rerank": ["nostream"]})
SUPPORTED = {
    "openai": OPENAI_TASKS,
    "vllm": VLLM_TASKS,
    "sglang": VLLM_TASKS,
    "together": {
        "text-to-text": ["stream"],
        "image-text-to-text": ["stream"],
        "text-to-embeddings": ["nostream"],
    },
    "azure-openai": {
        "text-to-text": ["stream", "nostream"],
        "image-text-to-text": ["stream", "nostream"],
        "text-to-embeddings": ["nostream"],
    },
    "aws-bedrock": {
        "text-to-text": ["stream", "nostream"],
        "image-text-to-text": ["stream", "nostream"],
        "text-to-embeddings": ["nostream"],
    },
    "gcp-vertex": {
        "text-to-text": ["stream", "nostream"],
        "image-text-to-text": ["stream", "nostream"],
        "text-to-embeddings": ["nostream"],
    },
    "cohere": {
        "text-to-text": ["stream"],
        "text-to-embeddings": ["nostream"],
        "image-to-embeddings": ["nostream"],
    },
    "oci-cohere": {
        "text-to-text": ["stream"],
        "text-to-rerank": ["nostream"],
        "text-to-embeddings": ["nostream"],
        "image-to-embeddings": ["nostream"],
    },
    "oci-cohere-v2": {
        "text-to-text": ["stream"],
        "image-text-to-text": ["stream"],
    },
    "oci-genai": {"text-to-text": ["stream"]},
    "oci-openai": {
        "text-to-image": ["nostream"],
        "text-to-speech": ["stream"],
    },
}
NOT_GENAI_BENCH = {
    "baseten": "baseten is not an --api-backend of genai-bench 0.0.5 "
    "(its CLI offers: " + ", ".join(sorted(SUPPORTED)) + ")",
}
