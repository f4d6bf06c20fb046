"""Building blocks shared by methods: linear-system solvers, inner solvers, hypergradients."""
