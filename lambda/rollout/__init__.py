"""Tessera's progressive rollout: the Step Functions steps that take a model version from canary to stable."""
