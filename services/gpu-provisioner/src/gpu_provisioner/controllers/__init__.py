"""The provisioner's controllers: NodeClaim lifecycle (launch, registration, initialization,
termination), garbage collection and node repair."""
