"""Tessera's model registry: manifests, the checks a model version must pass, and its DynamoDB store.

Shared by the `register` Lambda (registry.handler) and the operator CLI (tessera models ...).
"""
