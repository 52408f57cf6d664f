"""A CPU server with SGLang's HTTP contract and a latency model (see README, "The SGLang
simulator"). Shares no code with the proxy."""

from warmgate.backends.sim.cluster import SimCluster
from warmgate.backends.sim.config import SimConfig
from warmgate.backends.sim.faults import Faults
from warmgate.backends.sim.replica import Replica

__all__ = ["Faults", "Replica", "SimCluster", "SimConfig"]
