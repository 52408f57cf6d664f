"""HTTP routes of the simulator, one module per API family."""
