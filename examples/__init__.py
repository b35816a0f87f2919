"""Example handlers used by the manifests in configs/."""
