"""Analysis of runs: loss statistics, the latent space, and (across runs) seed aggregation."""
