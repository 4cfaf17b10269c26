"""How the app lands on hardware: profiles, cluster definitions, the local cluster, group envs."""
