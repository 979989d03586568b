"""REST adapters over the data plane: one module per API surface; they translate HTTP and nothing else."""
