"""Cluster bring-up: Talos -> etcd -> Cilium -> Flux, and disaster-recovery rebuild."""
