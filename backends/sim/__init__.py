"""A CPU server with SGLang's HTTP contract and a latency model (see README, "The SGLang
simulator"). Shares no code with the proxy."""

from backends.sim.cluster import SimCluster
from backends.sim.config import SimConfig
from backends.sim.faults import Faults
from backends.sim.replica import Replica

__all__ = ["Faults", "Replica", "SimCluster", "SimConfig"]
