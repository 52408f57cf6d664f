"""What the test suites share: the gateway and the simulator on real ports, spec checks."""
