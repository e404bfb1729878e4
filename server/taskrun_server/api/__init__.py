"""The gRPC layer: servicers that translate protobuf to domain objects and back."""
