"""The KServe v2 / Triton gRPC adapter: `inference.GRPCInferenceService` over the same data plane as REST.

The service stubs are those generated from Triton's official `grpc_service.proto` (a superset of the Open
Inference Protocol's `open_inference_grpc.proto`: same package, service and messages, plus the repository RPCs), as
the `tritonclient[grpc]` package ships them; nothing is generated or vendored here. Needs the `grpc` extra.
"""
