"""The per-user likelihood-ratio model (Freeman et al., NDSS 2016)."""
