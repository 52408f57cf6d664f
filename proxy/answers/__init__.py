"""The respond stage: a backend's answer made the client's, whole or streamed.

`shaping` is the interface the endpoint table names (a `Shape` for whole answers, a `Translate`
for streams); the other modules are what those functions use: chat and completion bodies and
chunks (`completions`, `sse`), Responses API objects and streams (`responses_api`), embeddings
in base64 (`base64_vectors`), images (`generated_images`), transcripts (`transcripts`), and a
backend's errors as the gateway's (`failures`).
"""
