"""One small server per stack of the peer benchmark, each serving ``bench.peers.pipeline.ChatPipeline`` the way its
framework's documentation recommends for a CPU model that benefits from batching."""
