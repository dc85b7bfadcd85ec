"""Model, solvers, mechanism engine and PettingZoo environments."""
