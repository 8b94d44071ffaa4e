"""The sans-I/O Raft core of the control plane (RaftCore, Ready) and its wire messages."""
