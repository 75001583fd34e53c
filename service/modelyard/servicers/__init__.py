"""gRPC servicers: each converts proto to domain values, calls one business function, converts back."""
