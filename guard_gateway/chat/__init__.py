"""The guarded chat proxy: `POST /v1/chat/completions` forwarded to the main LLM with input and output rails."""
