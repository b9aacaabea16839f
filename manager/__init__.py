"""IQL-TD-MPC: flat agent, TD-MPC baseline and the hierarchical Manager."""
