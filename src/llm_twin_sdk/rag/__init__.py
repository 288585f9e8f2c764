"""Retrieval: chunking, embeddings, the Qdrant store, the pipeline and prompt assembly."""
